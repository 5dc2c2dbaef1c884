// Small per-row operations of the V4 forward (spec §4.2, §4.7).
#pragma once

#include <cstdint>

#include "core/bf16.h"

namespace dsv4::v4 {

// Weighted RMSNorm: y = bf16((x * rsqrt(mean(x²) + eps)) * w), FP32 math. x and y may alias.
void RmsNorm(const BF16* x, const float* w, int64_t dim, float eps, BF16* y);
// Unweighted per-head query norm evaluated in BF16 arithmetic as the reference does (§4.2):
// every intermediate (square, mean, + eps, rsqrt, product) is rounded to BF16.
void HeadRmsNormBf16(BF16* x, int64_t dim, float eps);
// y = x · Hᵀ · n^-1/2 with the natural-order Sylvester Hadamard matrix (§4.7); n a power of
// two; FP32 inside, BF16 in place. Computed as HadamardF32, then × n^-1/2 and one BF16
// rounding: the order of the reference's HadamardBf16, bit for bit.
void Hadamard(BF16* x, int64_t n);
// The unscaled transform v · Hᵀ in place on FP32 v [n] (n a power of two), as the fast
// Walsh–Hadamard transform: butterflies (a, b) -> (a + b, a - b) on pairs (i, i + h) with
// i & h == 0, for strides h = 1, 2, 4, ... n/2 in that order; O(n log n).
void HadamardF32(float* v, int64_t n);

}  // namespace dsv4::v4
