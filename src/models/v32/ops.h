// Small per-row operations of the V3.2 forward (spec §4.2, §4.7, §14.3): RMSNorm (plain and
// fused with the residual add, as the reference's RMSNorm(x, residual)), the indexer's
// LayerNorm with bias, and the Hadamard rotation. FP32 math, BF16 results.
#pragma once

#include <cstdint>

#include "core/bf16.h"

namespace dsv4::v32 {

// Weighted RMSNorm: y = bf16((x · rsqrt(mean(x²) + eps)) · w), FP32 math. x and y may alias.
// x BF16 [dim]; w F32 [dim]; y BF16 [dim].
void RmsNorm(const BF16* x, const float* w, int64_t dim, float eps, BF16* y);

// The reference's fused pre-norm residual step: s = fp32(f) + fp32(residual) in FP32, then
// residual <- bf16(s) and y <- RMSNorm of the unrounded FP32 s. f, residual, y BF16 [dim];
// y may alias f.
void AddRmsNorm(const BF16* f, BF16* residual, const float* w, int64_t dim, float eps, BF16* y);

// LayerNorm with weight and bias (torch layer_norm on FP32: biased variance):
// y = bf16((x − mean) · rsqrt(var + eps) · w + b). x and y may alias.
void LayerNorm(const BF16* x, const float* w, const float* b, int64_t dim, float eps, BF16* y);

// y = x · Hᵀ · n^-1/2 with the natural-order Sylvester Hadamard matrix (§4.7); n a power of
// two; FP32 inside, BF16 in place.
void Hadamard(BF16* x, int64_t n);

}  // namespace dsv4::v32
