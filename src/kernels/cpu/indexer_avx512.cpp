// AVX-512 indexer scan of V4 FP4 keys: the FP32 loop is indexer_tiles.inc over simd::Avx512
// (16 keys per tile, register p holding keys p and p + 8 as its two 8-lane halves, scored
// against two query heads at a time); the VDPBF16PS loop below (the tile of
// indexer_bf16_tile.h, shared with the V3.2 scan) takes every tile it can.
#define DSV4_VEC_TARGET DSV4_TARGET_AVX512
#include "kernels/cpu/indexer_tiles.inc"

#include "kernels/cpu/indexer_bf16_tile.h"

namespace dsv4::kernels::internal {
namespace {

using V = simd::Avx512;
constexpr int kKeys = V::kTile;
constexpr int kPairs = kKeys / 2;

// ---------------------------------------------------------------------------------------
// BF16 dot path. A key value is an E2M1 value times its block's power of two, so its BF16
// word is the E2M1 word with the exponent field moved; q is BF16 already. Products are exact
// (8 x 2 significant bits) and, under BlockIsSafe, every product and partial sum is an FP32
// normal (or zero), so VDPBF16PS rounds as the canonical multiply-then-add order.

// Whether a tile whose key scale exponents (unbiased) lie in [e_min, e_max] keeps every key
// value, product and partial sum FP32-normal and finite.
bool TileIsSafe(const IndexerPrepared& q, int e_min, int e_max) {
  if (q.q_exp_max >= 128 || q.q_exp_min <= -127) return false;  // NaN / inf / subnormal q
  if (e_min - 1 < -126 || e_max + 3 > 127) return false;        // key values 2^(e-1) .. 6*2^e
  if (q.q_exp_min > q.q_exp_max) return true;                   // q == 0: every product is 0
  // Products are multiples of 2^(q_min - 7) * 2^(e_min - 1); sums of 128 stay below
  // 128 * 2^(q_max + 1) * 6 * 2^e_max < 2^(q_max + e_max + 11).
  return q.q_exp_min - 7 + e_min - 1 >= -126 && q.q_exp_max + e_max + 11 <= 127;
}

// The smallest (kMax false) or largest byte of v.
template <bool kMax>
DSV4_TARGET_AVX512BF16 __m512i MinMaxU8(__m512i x, __m512i y) {
  return kMax ? _mm512_max_epu8(x, y) : _mm512_min_epu8(x, y);
}
template <bool kMax>
DSV4_TARGET_AVX512BF16 int ReduceU8(__m512i v) {
  v = MinMaxU8<kMax>(v, _mm512_shuffle_i64x2(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
  v = MinMaxU8<kMax>(v, _mm512_shuffle_i64x2(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
  v = MinMaxU8<kMax>(v, _mm512_shuffle_epi32(v, _MM_PERM_BADC));
  v = MinMaxU8<kMax>(v, _mm512_shuffle_epi32(v, _MM_PERM_CDAB));
  v = MinMaxU8<kMax>(v, _mm512_srli_epi32(v, 16));  // byte 0 is right after each step
  v = MinMaxU8<kMax>(v, _mm512_srli_epi16(v, 8));
  return _mm_cvtsi128_si32(_mm512_castsi512_si128(v)) & 0xFF;
}

// The smallest and largest unbiased exponents (code - 127) of the tile's E8M0 key scales.
DSV4_TARGET_AVX512BF16 void TileScaleRange(const uint8_t* const* rows, int64_t dim, int* e_min,
                                           int* e_max) {
  const int64_t blocks = dim / 32, scales = IndexerKeyFp4Layout{dim}.scales_offset();
  if (blocks % 4 != 0) {
    int lo = 255, hi = 0;
    for (int i = 0; i < kKeys; ++i) {
      for (int64_t b = 0; b < blocks; ++b) {
        lo = std::min<int>(lo, rows[i][scales + b]);
        hi = std::max<int>(hi, rows[i][scales + b]);
      }
    }
    *e_min = lo - 127;
    *e_max = hi - 127;
    return;
  }
  // Four scale codes per row and gather lane, then the 64 bytes reduced to one.
  const __m512i first = _mm512_loadu_si512(rows), second = _mm512_loadu_si512(rows + 8);
  __m512i lo = _mm512_set1_epi8(-1), hi = _mm512_setzero_si512();
  for (int64_t b = 0; b < blocks; b += 4) {
    const __m512i offset = _mm512_set1_epi64(scales + b);
    const __m256i a = _mm512_i64gather_epi32(_mm512_add_epi64(first, offset), nullptr, 1);
    const __m256i c = _mm512_i64gather_epi32(_mm512_add_epi64(second, offset), nullptr, 1);
    const __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(a), c, 1);
    lo = _mm512_min_epu8(lo, v);
    hi = _mm512_max_epu8(hi, v);
  }
  *e_min = ReduceU8<false>(lo) - 127;
  *e_max = ReduceU8<true>(hi) - 127;
}

// kb: the tile in the layout of indexer_bf16_tile.h.
DSV4_TARGET_AVX512BF16 void DecodeTileBf16(const uint8_t* const* rows, int64_t dim,
                                           const simd::E2M1PairConsts& c, uint32_t* kb) {
  const __m512i magnitude = _mm512_set1_epi16(0x7FFF);
  const int64_t scales = IndexerKeyFp4Layout{dim}.scales_offset();
  for (int64_t block = 0; block < dim / 32; ++block) {  // the two value groups of a scale
    __m512i v[2][kPairs];  // [key p | key p + 8] in pair layout
    for (int p = 0; p < kPairs; ++p) {
      const uint8_t* a = rows[p];
      const uint8_t* b = rows[p + 8];
      // Scale 2^(s-127): add s - 127 to the exponent field of the nonzero words.
      const int16_t da = static_cast<int16_t>((a[scales + block] - 127) * 128);
      const int16_t db = static_cast<int16_t>((b[scales + block] - 127) * 128);
      const __m512i shift =
          _mm512_mask_blend_epi16(0xFFFF0000u, _mm512_set1_epi16(da), _mm512_set1_epi16(db));
      for (int half = 0; half < 2; ++half) {
        const int64_t g = 2 * block + half;
        const __m512i x = simd::E2M1PairsBf16(a + 8 * g, b + 8 * g, c);
        v[half][p] = _mm512_mask_add_epi16(x, _mm512_test_epi16_mask(x, magnitude), x, shift);
      }
    }
    for (int half = 0; half < 2; ++half) {
      bf16_tile::StoreGroup(v[half], kb + (2 * block + half) * bf16_tile::kGroupDwords);
    }
  }
}

// Whether, in a tile that TileIsSafe passed, every nonzero product w_h * relu(bf16(dot)) is an
// FP32 normal and none is NaN: w finite, and w_min * 2^(q_min - 7) * 2^(e_min - 1) (the
// smallest nonzero dot is one product's granularity) at least 2^-126.
bool ProductIsNormal(const IndexerPrepared& q, int e_min) {
  return q.w_exp_max < 128 && q.w_exp_min + q.q_exp_min - 8 + e_min >= -126;
}

// Fp4HeadTerm for a tile that TileIsSafe passed: every dot is zero or an FP32 normal, so
// VCVTNEPS2BF16 (round to nearest even; it flushes subnormal inputs and quiets NaNs, neither
// of which occurs here) rounds it to BF16 exactly as RoundBf16 does, in fewer instructions.
// kNormalProduct (ProductIsNormal): the weighted term is rounded the same way. ReLU before
// the rounding: rounding is monotone and keeps 0, and no dot is NaN.
template <bool kNormalProduct>
struct SafeFp4HeadTerm {
  const float* w;  // [heads]
  DSV4_TARGET_AVX512BF16 static __m512 Bf16(__m512 x) {
    const __m256i words = reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(x));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(words), 16));
  }
  DSV4_TARGET_AVX512BF16 __m512 operator()(__m512 total, int64_t h, __m512 dot) const {
    const __m512 weighted = _mm512_mul_ps(_mm512_set1_ps(w[h]), Bf16(simd::Relu16(dot)));
    return _mm512_add_ps(total, kNormalProduct ? Bf16(weighted) : simd::RoundBf16x16(weighted));
  }
};

template <bool kNormalProduct>
DSV4_TARGET_AVX512BF16 __m512 ScoreTileBf16(const IndexerPrepared& q, const uint32_t* kb) {
  return simd::RoundBf16x16(bf16_tile::SumHeads(q.q_pairs, q.heads, q.dim, kb,
                                                SafeFp4HeadTerm<kNormalProduct>{q.w}));
}

}  // namespace

DSV4_TARGET_AVX512BF16 void IndexerScoresAvx512Bf16(std::span<const IndexerPrepared> qs,
                                                    const PagedRows& keys, int64_t begin,
                                                    int64_t end, float* scores, int64_t stride,
                                                    IndexerThreadScratch* scratch) {
  const int64_t dim = qs[0].dim;
  float* kb = GrowTo(scratch->kb, dim * kKeys);
  // Accessed through intrinsics only (they may alias any type).
  uint32_t* kb16 = reinterpret_cast<uint32_t*>(GrowTo(scratch->kb16, dim * kKeys));
  const simd::E2M1PairConsts consts = simd::MakeE2M1PairConsts();
  for (int64_t t0 = begin; t0 < end; t0 += kKeys) {
    const uint8_t* rows[kKeys];
    const int64_t count = TileKeys<V>(keys, t0, end, rows);
    PrefetchTile<V>(keys, t0 + kKeys, end);
    int e_min, e_max;
    TileScaleRange(rows, dim, &e_min, &e_max);
    // Each form decoded once, when the first query that takes it comes.
    bool have_bf16 = false, have_fp32 = false;
    for (size_t j = 0; j < qs.size(); ++j) {
      const IndexerPrepared& q = qs[j];
      const int64_t seen = TileKeysSeen(q.visible, t0, count);
      if (seen == 0) continue;
      __m512 out;
      if (TileIsSafe(q, e_min, e_max)) {
        if (!have_bf16) DecodeTileBf16(rows, dim, consts, kb16);
        have_bf16 = true;
        out = ProductIsNormal(q, e_min) ? ScoreTileBf16<true>(q, kb16)
                                        : ScoreTileBf16<false>(q, kb16);
      } else {
        if (!have_fp32) DecodeTileFp4<V>(rows, dim, kb);
        have_fp32 = true;
        out = ScoreTileFp4<V>(q, kb);
      }
      StoreScores<V>(scores + static_cast<int64_t>(j) * stride + (t0 - begin), out, seen);
    }
  }
}

DSV4_TARGET_AVX512 void IndexerScoresAvx512(std::span<const IndexerPrepared> qs,
                                            const PagedRows& keys, int64_t begin, int64_t end,
                                            float* scores, int64_t stride,
                                            IndexerThreadScratch* scratch) {
  IndexerScoresFp4Tiles<V>(qs, keys, begin, end, scores, stride, scratch);
}

}  // namespace dsv4::kernels::internal
