// AVX-512 indexer scan of V3.2 FP8 keys: the FP32 loop is indexer_tiles.inc over
// simd::Avx512 (16 keys per tile, register p holding keys p and p + 8 as its two 8-lane
// halves, scored against two query heads at a time); the VDPBF16PS loop below (see
// indexer_fp8_internal.h: every tile qualifies) is the tile of indexer_bf16_tile.h, shared
// with the V4 scan. E4M3 x E4M3 products are exact, so FMA and VDPBF16PS round exactly as
// the canonical multiply-then-add.
#define DSV4_VEC_TARGET DSV4_TARGET_AVX512
#include "kernels/cpu/indexer_tiles.inc"

#include "kernels/cpu/indexer_bf16_tile.h"

namespace dsv4::kernels::internal {
namespace {

using V = simd::Avx512;
constexpr int kKeys = V::kTile;
constexpr int kPairs = kKeys / 2;

// kb: the tile in the layout of indexer_bf16_tile.h, the exact code values.
DSV4_TARGET_AVX512BF16 void DecodeTileBf16(const uint8_t* const* rows, int64_t dim,
                                           const simd::E4M3PairConsts& c, uint32_t* kb) {
  for (int64_t g = 0; g < dim / 16; ++g) {
    __m512i v[kPairs];  // [key p | key p + 8] in pair layout
    for (int p = 0; p < kPairs; ++p) {
      v[p] = simd::E4M3PairsBf16(rows[p] + 16 * g, rows[p + 8] + 16 * g, c);
    }
    bf16_tile::StoreGroup(v, kb + g * bf16_tile::kGroupDwords);
  }
}

// Fp8HeadTerm on the dots of exact code values: total + max(dot, 0) * w_h.
struct Fp8DotTerm {
  const float* w;  // [heads]
  DSV4_TARGET_AVX512BF16 __m512 operator()(__m512 total, int64_t h, __m512 dot) const {
    return _mm512_add_ps(total, _mm512_mul_ps(simd::Relu16(dot), _mm512_set1_ps(w[h])));
  }
};

DSV4_TARGET_AVX512BF16 __m512 ScoreTileBf16(const IndexerFp8Prepared& q, const uint32_t* kb) {
  return bf16_tile::SumHeads(q.q_pairs, q.heads, q.dim, kb, Fp8DotTerm{q.w});
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
  // Accessed through intrinsics only (they may alias any type).
  uint32_t* kb = reinterpret_cast<uint32_t*>(GrowTo(scratch->kb16, dim * kKeys));
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
