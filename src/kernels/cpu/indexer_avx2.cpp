// AVX2 indexer scans, V4 FP4 keys and V3.2 FP8 keys: indexer_tiles.inc over simd::Avx2 (8 keys
// per tile, one __m256 per key and step, scored head by head).
#define DSV4_VEC_TARGET DSV4_TARGET_AVX2
#include "kernels/cpu/indexer_tiles.inc"

namespace dsv4::kernels::internal {

DSV4_TARGET_AVX2 void IndexerScoresAvx2(std::span<const IndexerPrepared> qs,
                                        const PagedRows& keys, int64_t begin, int64_t end,
                                        float* scores, int64_t stride,
                                        IndexerThreadScratch* scratch) {
  IndexerScoresFp4Tiles<simd::Avx2>(qs, keys, begin, end, scores, stride, scratch);
}

DSV4_TARGET_AVX2 void IndexerFp8ScoresAvx2(std::span<const IndexerFp8Prepared> qs,
                                           const PagedRows& keys, int64_t begin, int64_t end,
                                           float* scores, int64_t stride,
                                           IndexerThreadScratch* scratch) {
  IndexerScoresFp8Tiles<simd::Avx2>(qs, keys, begin, end, scores, stride, scratch);
}

}  // namespace dsv4::kernels::internal
