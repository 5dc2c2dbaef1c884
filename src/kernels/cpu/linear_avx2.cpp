// AVX2 tile loops of the linears: linear_tiles.inc over simd::Avx2 (8 output rows per tile,
// one __m256 8-lane accumulator per output, reduced together with hadds).
#define DSV4_VEC_TARGET DSV4_TARGET_AVX2
#include "kernels/cpu/linear_tiles.inc"

namespace dsv4::kernels::internal {

DSV4_TARGET_AVX2 void LinearTilesAvx2(const LinearCall& c, int64_t n0, int64_t n1) {
  LinearTiles<simd::Avx2>(c, n0, n1);
}

}  // namespace dsv4::kernels::internal
