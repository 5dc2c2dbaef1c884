// AVX-512 indexer scan of V4 FP4 keys: the FP32 loop is indexer_tiles.inc over simd::Avx512
// (16 keys per tile, register p holding keys p and p + 8 as its two 8-lane halves, scored
// against two query heads at a time); the VDPBF16PS loop below takes every tile it can.
#define DSV4_VEC_TARGET DSV4_TARGET_AVX512
#include "kernels/cpu/indexer_tiles.inc"

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

// kb BF16 words [dim/16][kPairs][32]: group g of keys p (lanes 0-7) and p + 8 (lanes 8-15)
// in pair layout.
DSV4_TARGET_AVX512BF16 void DecodeTileBf16(const uint8_t* const* rows, int64_t dim,
                                           const simd::E2M1PairConsts& c, uint16_t* kb) {
  const __m512i magnitude = _mm512_set1_epi16(0x7FFF);
  const int64_t scales = IndexerKeyFp4Layout{dim}.scales_offset();
  for (int p = 0; p < kPairs; ++p) {
    const uint8_t* a = rows[p];
    const uint8_t* b = rows[p + 8];
    for (int64_t g = 0; g < dim / 16; ++g) {
      __m512i v = simd::E2M1PairsBf16(a + 8 * g, b + 8 * g, c);
      // Scale 2^(s-127): add s - 127 to the exponent field of the nonzero words.
      const int16_t da = static_cast<int16_t>((a[scales + g / 2] - 127) * 128);
      const int16_t db = static_cast<int16_t>((b[scales + g / 2] - 127) * 128);
      const __m512i shift =
          _mm512_mask_blend_epi16(0xFFFF0000u, _mm512_set1_epi16(da), _mm512_set1_epi16(db));
      v = _mm512_mask_add_epi16(v, _mm512_test_epi16_mask(v, magnitude), v, shift);
      _mm512_storeu_si512(kb + (g * kPairs + p) * 32, v);
    }
  }
}

DSV4_TARGET_AVX512BF16 __m512 ScoreTileBf16(const IndexerPrepared& q, const uint16_t* kb) {
  const int64_t groups = q.dim / 16;
  __m512 total = _mm512_setzero_ps();
  const Fp4HeadTerm<V> term{q.w};
  auto q_group = [&](int64_t h, int64_t g) { return q.q_pairs + (h * groups + g) * 8; };
  int64_t h = 0;
  for (; h + 2 <= q.heads; h += 2) {
    __m512 a0[kPairs], a1[kPairs];
#pragma GCC unroll 8
    for (int p = 0; p < kPairs; ++p) a0[p] = a1[p] = _mm512_setzero_ps();
    for (int64_t g = 0; g < groups; ++g) {
      const __m512i qa = _mm512_broadcast_i64x4(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q_group(h, g))));
      const __m512i qb = _mm512_broadcast_i64x4(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q_group(h + 1, g))));
      const uint16_t* k = kb + g * kPairs * 32;
#pragma GCC unroll 8
      for (int p = 0; p < kPairs; ++p) {
        const __m512i kv = _mm512_loadu_si512(k + 32 * p);
        a0[p] = simd::DotBf16(a0[p], qa, kv);
        a1[p] = simd::DotBf16(a1[p], qb, kv);
      }
    }
    total = term(total, h, a0);
    total = term(total, h + 1, a1);
  }
  for (; h < q.heads; ++h) {
    __m512 a0[kPairs];
#pragma GCC unroll 8
    for (int p = 0; p < kPairs; ++p) a0[p] = _mm512_setzero_ps();
    for (int64_t g = 0; g < groups; ++g) {
      const __m512i qa = _mm512_broadcast_i64x4(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q_group(h, g))));
#pragma GCC unroll 8
      for (int p = 0; p < kPairs; ++p) {
        a0[p] = simd::DotBf16(a0[p], qa, _mm512_loadu_si512(kb + (g * kPairs + p) * 32));
      }
    }
    total = term(total, h, a0);
  }
  return simd::RoundBf16x16(total);
}

}  // namespace

DSV4_TARGET_AVX512BF16 void IndexerScoresAvx512Bf16(std::span<const IndexerPrepared> qs,
                                                    const PagedRows& keys, int64_t begin,
                                                    int64_t end, float* scores, int64_t stride,
                                                    IndexerThreadScratch* scratch) {
  const int64_t dim = qs[0].dim;
  float* kb = GrowTo(scratch->kb, dim * kKeys);
  uint16_t* kb16 = GrowTo(scratch->kb16, dim * kKeys);
  const simd::E2M1PairConsts consts = simd::MakeE2M1PairConsts();
  const int64_t blocks = dim / 32;
  const int64_t scales = IndexerKeyFp4Layout{dim}.scales_offset();
  for (int64_t t0 = begin; t0 < end; t0 += kKeys) {
    const uint8_t* rows[kKeys];
    const int64_t count = TileKeys<V>(keys, t0, end, rows);
    int e_min = 1000, e_max = -1000;
    for (int i = 0; i < kKeys; ++i) {
      for (int64_t b = 0; b < blocks; ++b) {
        const int e = rows[i][scales + b] - 127;
        e_min = std::min(e_min, e);
        e_max = std::max(e_max, e);
      }
    }
    // Each form decoded once, when the first query that takes it comes.
    bool have_bf16 = false, have_fp32 = false;
    for (size_t j = 0; j < qs.size(); ++j) {
      const IndexerPrepared& q = qs[j];
      const int64_t seen = TileKeysSeen(q.visible, t0, count);
      if (seen == 0) continue;
      float out[kKeys];
      if (TileIsSafe(q, e_min, e_max)) {
        if (!have_bf16) DecodeTileBf16(rows, dim, consts, kb16);
        have_bf16 = true;
        _mm512_storeu_ps(out, ScoreTileBf16(q, kb16));
      } else {
        if (!have_fp32) DecodeTileFp4<V>(rows, dim, kb);
        have_fp32 = true;
        _mm512_storeu_ps(out, ScoreTileFp4<V>(q, kb));
      }
      std::copy_n(out, seen, scores + static_cast<int64_t>(j) * stride + (t0 - begin));
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
