// A linear layer's weight as the kernels see it: y = x Wᵀ with W [out, in] in one of the
// checkpoint storage formats (spec §4.6). Non-owning; the model's weight store owns the bytes.
#pragma once

#include <cstdint>

#include "core/bf16.h"

namespace dsv4::kernels {

enum class LinearKind {
  kFp8Block,  // codes e4m3 [out, in] + scales [ceil(out/128), ceil(in/128)], e8m0 (`scales`)
              // or f32 (`scales_f32`); the input is quantised to FP8 per 128 (act_quant) and
              // the output rounded to BF16
  kFp4Row32,  // codes packed e2m1 [out, in/2] (low nibble = even column) + e8m0 [out, in/32];
              // input quantised to FP8 per 128; output BF16
  kBf16,      // bf16 [out, in]: BF16 inputs, FP32 accumulation, BF16 output
  kF32,       // f32 [out, in]: FP32 inputs and outputs (FP32-promoted weights)
};

struct LinearWeight {
  LinearKind kind = LinearKind::kBf16;
  int64_t out = 0;
  int64_t in = 0;
  const uint8_t* codes = nullptr;
  const uint8_t* scales = nullptr;
  const BF16* bf16 = nullptr;
  const float* f32 = nullptr;
  // kFp8Block only: f32 [ceil(out/128), ceil(in/128)] tile scales, used instead of the E8M0
  // `scales` when set. V3.2 checkpoints store them as `weight_scale_inv` (dequantised weight =
  // fp8 × scale), not necessarily powers of two.
  const float* scales_f32 = nullptr;
};

}  // namespace dsv4::kernels
