// Row RMSNorm shared by both forward passes (spec §4.2, §14.2): FP32 math, BF16 results.
// The plain references (models/*/reference) keep their own copies: they check these.
#pragma once

#include <cstdint>

#include "core/bf16.h"

namespace dsv4::models {

// Weighted RMSNorm: y = bf16((x · rsqrt(mean(x²) + eps)) · w), FP32 math, the squares summed
// in index order. x BF16 [dim]; w F32 [dim]; y BF16 [dim]. x and y may alias. No allocation.
void RmsNorm(const BF16* x, const float* w, int64_t dim, float eps, BF16* y);

// The same on an FP32 row (V3.2's fused residual step normalises the unrounded sum).
// x F32 [dim]; w F32 [dim]; y BF16 [dim].
void RmsNormF32(const float* x, const float* w, int64_t dim, float eps, BF16* y);

}  // namespace dsv4::models
