// AVX-512 indexer scan of V3.2 FP8 keys: the FP32 loop is indexer_tiles.inc over
// simd::Avx512 (16 keys per tile, register p holding keys p and p + 8 as its two 8-lane
// halves, scored against two query heads at a time); the VDPBF16PS loop below (see
// indexer_fp8_internal.h: every tile qualifies) has the same structure. E4M3 x E4M3 products
// are exact, so FMA and VDPBF16PS round exactly as the canonical multiply-then-add.
#define DSV4_VEC_TARGET DSV4_TARGET_AVX512
#include "kernels/cpu/indexer_tiles.inc"

namespace dsv4::kernels::internal {
namespace {

using V = simd::Avx512;
constexpr int kKeys = V::kTile;
constexpr int kPairs = kKeys / 2;

// kb BF16 words [dim/16][kPairs][32]: group g of keys p (dword lanes 0-7) and p + 8 (lanes
// 8-15) in pair layout, the exact code values.
DSV4_TARGET_AVX512BF16 void DecodeTileBf16(const uint8_t* const* rows, int64_t dim,
                                           const simd::E4M3PairConsts& c, uint16_t* kb) {
  for (int p = 0; p < kPairs; ++p) {
    for (int64_t g = 0; g < dim / 16; ++g) {
      _mm512_storeu_si512(kb + (g * kPairs + p) * 32,
                          simd::E4M3PairsBf16(rows[p] + 16 * g, rows[p + 8] + 16 * g, c));
    }
  }
}

DSV4_TARGET_AVX512BF16 __m512 ScoreTileBf16(const IndexerFp8Prepared& q, const uint16_t* kb) {
  const int64_t groups = q.dim / 16;
  __m512 total = _mm512_setzero_ps();
  const Fp8HeadTerm<V, /*kUnscale=*/false> term{q.w};  // exact code values
  auto q_group = [&](int64_t h, int64_t g) {
    return _mm512_broadcast_i64x4(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q.q_pairs + (h * groups + g) * 8)));
  };
  int64_t h = 0;
  for (; h + 2 <= q.heads; h += 2) {
    __m512 a0[kPairs], a1[kPairs];
#pragma GCC unroll 8
    for (int p = 0; p < kPairs; ++p) a0[p] = a1[p] = _mm512_setzero_ps();
    for (int64_t g = 0; g < groups; ++g) {
      const __m512i qa = q_group(h, g), qb = q_group(h + 1, g);
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
      const __m512i qa = q_group(h, g);
#pragma GCC unroll 8
      for (int p = 0; p < kPairs; ++p) {
        a0[p] = simd::DotBf16(a0[p], qa, _mm512_loadu_si512(kb + (g * kPairs + p) * 32));
      }
    }
    total = term(total, h, a0);
  }
  return total;
}

}  // namespace

DSV4_TARGET_AVX512 void IndexerFp8ScoresAvx512(std::span<const IndexerFp8Prepared> qs,
                                               const PagedRows& keys, int64_t begin, int64_t end,
                                               float* scores, int64_t stride,
                                               IndexerThreadScratch* scratch) {
  IndexerScoresFp8Tiles<V>(qs, keys, begin, end, scores, stride, scratch);
}

DSV4_TARGET_AVX512BF16 void IndexerFp8ScoresAvx512Bf16(std::span<const IndexerFp8Prepared> qs,
                                                       const PagedRows& keys, int64_t begin,
                                                       int64_t end, float* scores, int64_t stride,
                                                       IndexerThreadScratch* scratch) {
  const int64_t dim = qs[0].dim;
  uint16_t* kb = GrowTo(scratch->kb16, dim * kKeys);
  const simd::E4M3PairConsts consts = simd::MakeE4M3PairConsts();
  for (int64_t t0 = begin; t0 < end; t0 += kKeys) {
    const uint8_t* rows[kKeys];
    const int64_t count = TileKeys<V>(keys, t0, end, rows);
    PrefetchTile<V>(keys, t0 + kKeys, end);
    float scales[kKeys];
    TileScalesFp8<V>(rows, dim, scales);
    DecodeTileBf16(rows, dim, consts, kb);
    for (size_t j = 0; j < qs.size(); ++j) {
      const int64_t seen = TileKeysSeen(qs[j].visible, t0, count);
      if (seen == 0) continue;
      StoreScores<V>(scores + static_cast<int64_t>(j) * stride + (t0 - begin),
                     _mm512_mul_ps(ScoreTileBf16(qs[j], kb), _mm512_loadu_ps(scales)), seen);
    }
  }
}

}  // namespace dsv4::kernels::internal
