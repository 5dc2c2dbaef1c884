// Small per-row operations of the V3.2 forward that V4 does not share (spec §4.2, §14.3):
// RMSNorm fused with the residual add (the reference's RMSNorm(x, residual)) and the
// indexer's LayerNorm with bias. FP32 math, BF16 results. Plain RMSNorm and the Hadamard
// rotation are models/common/norm.h and hadamard.h.
#pragma once

#include <cstdint>

#include "core/bf16.h"

namespace dsv4::v32 {

// The reference's fused pre-norm residual step: s = fp32(f) + fp32(residual) in FP32, then
// residual <- bf16(s) and y <- RMSNorm of the unrounded FP32 s. f, residual, y BF16 [dim];
// y may alias f.
void AddRmsNorm(const BF16* f, BF16* residual, const float* w, int64_t dim, float eps, BF16* y);

// LayerNorm with weight and bias (torch layer_norm on FP32: biased variance):
// y = bf16((x − mean) · rsqrt(var + eps) · w + b). x and y may alias.
void LayerNorm(const BF16* x, const float* w, const float* b, int64_t dim, float eps, BF16* y);

}  // namespace dsv4::v32
