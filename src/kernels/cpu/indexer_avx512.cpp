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

// The smallest and largest of 32 int16 words.
DSV4_TARGET_AVX512BF16 void ReduceMinMaxI16(__m512i lo, __m512i hi, int* min, int* max) {
  // Halved together (lo's minima in the low 256 bits, hi's maxima above), then words.
  __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_min_epi16(
                                     _mm512_castsi512_si256(lo), _mm512_extracti64x4_epi64(lo, 1))),
                                 _mm256_max_epi16(_mm512_castsi512_si256(hi),
                                                  _mm512_extracti64x4_epi64(hi, 1)),
                                 1);
  alignas(64) int16_t words[32];
  _mm512_store_si512(words, v);
  int a = words[0], b = words[16];
  for (int i = 1; i < 16; ++i) {
    a = std::min<int>(a, words[i]);
    b = std::max<int>(b, words[16 + i]);
  }
  *min = a;
  *max = b;
}

// kb: the tile in the layout of indexer_bf16_tile.h; *e_min, *e_max: the smallest and largest
// unbiased exponents (code - 127) of the tile's E8M0 key scales, found from the scale shifts
// the decoding builds anyway (no gather).
DSV4_TARGET_AVX512BF16 void DecodeTileBf16(const uint8_t* const* rows, int64_t dim,
                                           const simd::E2M1PairConsts& c, uint32_t* kb,
                                           int* e_min, int* e_max) {
  const __m512i magnitude = _mm512_set1_epi16(0x7FFF);
  const int64_t scales = IndexerKeyFp4Layout{dim}.scales_offset();
  __m512i lo = _mm512_set1_epi16(32767), hi = _mm512_set1_epi16(-32768);
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
      lo = _mm512_min_epi16(lo, shift);
      hi = _mm512_max_epi16(hi, shift);
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
  ReduceMinMaxI16(lo, hi, e_min, e_max);
  *e_min /= 128;  // exact: multiples of 128
  *e_max /= 128;
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

// SafeFp4HeadTerm<true> two heads at a time (the pending head's dot kept until the next
// comes), in fewer instructions: one VCVTNE2PS2BF16 rounds both heads' dots, a word permute
// puts key j's two BF16 dots in dword j ([head h - 1 | head h] as [low | high] word) and
// VPMAXSW applies ReLU to both words (a negative BF16 word is a negative int16; -0 becomes
// +0, which changes no sum: the running total starts at +0 and is never -0). VDPBF16PS
// against [w_h-1 | 0] and [0 | w_h] gives the two products exactly (BF16 x BF16 fits FP32,
// and ProductIsNormal keeps them normal or zero, so its input and output flushing never
// applies; the other word's product is a zero added first, which keeps the value, a -0
// product becoming +0 as above); a second VCVTNE2PS2BF16 and permute round them, and they
// are added in head order: every lane computes what SafeFp4HeadTerm<true> computes.
struct PairedFp4HeadTerm {
  const float* w;  // [heads]
  bool pending;
  __m512 held;  // the dot of head h - 1 when pending
  // BF16 of lo and hi, key j's in dword j as [lo's | hi's] (low | high word).
  DSV4_TARGET_AVX512BF16 static __m512i Interleave(__m512 lo, __m512 hi) {
    // word 2j: word j (lo's key j), word 2j + 1: word 16 + j (hi's key j)
    const __m512i index =
        _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22,
                         6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    return _mm512_permutexvar_epi16(index, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo)));
  }
  DSV4_TARGET_AVX512BF16 __m512 operator()(__m512 total, int64_t h, __m512 dot) {
    if (!pending) {
      held = dot;
      pending = true;
      return total;
    }
    pending = false;
    const __m512i relu = _mm512_max_epi16(Interleave(held, dot), _mm512_setzero_si512());
    // The FP32 bits of a BF16-valued w are [0 | w] as words; shifted, [w | 0].
    const __m512i w_hi = _mm512_castps_si512(_mm512_set1_ps(w[h]));
    const __m512i w_lo = _mm512_srli_epi32(_mm512_castps_si512(_mm512_set1_ps(w[h - 1])), 16);
    const __m512 p_lo = _mm512_dpbf16_ps(_mm512_setzero_ps(), reinterpret_cast<__m512bh>(relu),
                                         reinterpret_cast<__m512bh>(w_lo));
    const __m512 p_hi = _mm512_dpbf16_ps(_mm512_setzero_ps(), reinterpret_cast<__m512bh>(relu),
                                         reinterpret_cast<__m512bh>(w_hi));
    const __m512i terms = Interleave(p_lo, p_hi);
    const __m512i high = _mm512_set1_epi32(static_cast<int32_t>(0xFFFF0000u));
    total = _mm512_add_ps(total, _mm512_castsi512_ps(_mm512_slli_epi32(terms, 16)));
    return _mm512_add_ps(total, _mm512_castsi512_ps(_mm512_and_si512(terms, high)));
  }
  // The last head's term when the head count is odd.
  DSV4_TARGET_AVX512BF16 __m512 Finish(__m512 total, int64_t heads) const {
    return pending ? SafeFp4HeadTerm<true>{w}(total, heads - 1, held) : total;
  }
};

template <bool kNormalProduct>
DSV4_TARGET_AVX512BF16 __m512 ScoreTileBf16(const IndexerPrepared& q, const uint32_t* kb) {
  if constexpr (kNormalProduct) {
    PairedFp4HeadTerm term{q.w, false, _mm512_setzero_ps()};
    const __m512 total = bf16_tile::SumHeads(q.q_pairs, q.heads, q.dim, kb, term);
    return simd::RoundBf16x16(term.Finish(total, q.heads));
  } else {
    return simd::RoundBf16x16(bf16_tile::SumHeads(q.q_pairs, q.heads, q.dim, kb,
                                                  SafeFp4HeadTerm<false>{q.w}));
  }
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
    // The BF16 form decoded (with the scale range) when the first query that sees the tile
    // comes, the FP32 form when the first query that needs it comes.
    int e_min = 0, e_max = 0;
    bool have_bf16 = false, have_fp32 = false;
    for (size_t j = 0; j < qs.size(); ++j) {
      const IndexerPrepared& q = qs[j];
      const int64_t seen = TileKeysSeen(q.visible, t0, count);
      if (seen == 0) continue;
      if (!have_bf16) DecodeTileBf16(rows, dim, consts, kb16, &e_min, &e_max);
      have_bf16 = true;
      __m512 out;
      if (TileIsSafe(q, e_min, e_max)) {
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
