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
// two; FP32 inside, BF16 in place.
void Hadamard(BF16* x, int64_t n);

}  // namespace dsv4::v4
