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
  kF32,       // f32 [out, in], or bf16 [out, in] (`bf16` set, `f32` null) used as its exact
              // FP32 values (a BF16 checkpoint matrix the reference promotes: half the bytes
              // of promoting it at load): FP32 inputs and outputs
  kNvfp4Row16,  // NVFP4 (spec §11.5): codes packed e2m1 [out, in/2] as kFp4Row32 (or
                // `fp4_tiles`) + `scales` e4m3 [out, in/16] + `global_scale` f32; weight =
                // e2m1 x fp32(e4m3) x global_scale. Input quantised to FP8 per 128; output
                // BF16. Canonical order: internal::Nvfp4LaneScaledDot, on every ISA
                // (VDPBF16PS on the tile layout). Scales must be finite (the loader refuses
                // NaN codes): the SIMD paths decode a NaN code as ±480, the scalar one as NaN.
  kFp8AsBf16,  // codes e4m3 [out, in] + e8m0 `scales` as kFp8Block, used as their exact BF16
               // dequantisation (code x scale) with the input NOT quantised: the results of
               // kBf16 on the dequantised matrix (V4 wo_a, spec §6.5) at half the bytes. Every
               // scale must satisfy Fp8AsBf16ScalesOk (then code x scale is a BF16 normal or 0).
};

// Whether every E8M0 scale code is in [127 - 117, 127 + 119]: then each E4M3 code value
// (2^-9 .. 448) times its scale is a normal BF16 number, so kFp8AsBf16 is exact.
inline bool Fp8AsBf16ScalesOk(const uint8_t* scales, int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    if (scales[i] < 127 - 117 || scales[i] > 127 + 119) return false;
  }
  return true;
}

struct LinearWeight {
  LinearKind kind = LinearKind::kBf16;
  int64_t out = 0;
  int64_t in = 0;
  const uint8_t* codes = nullptr;
  const uint8_t* scales = nullptr;
  const BF16* bf16 = nullptr;
  const float* f32 = nullptr;
  // kFp4Row32 and kNvfp4Row16: the codes repacked into kernels/cpu/fp4_tiles.h's layout
  // (RepackFp4Tiles), which every kernel path reads when set (`codes` may then be null).
  const uint8_t* fp4_tiles = nullptr;
  // kFp8Block only (not kFp8AsBf16): f32 [ceil(out/128), ceil(in/128)] tile scales, used
  // instead of the E8M0 `scales` when set. V3.2 checkpoints store them as `weight_scale_inv`
  // (dequantised weight = fp8 × scale), not necessarily powers of two.
  const float* scales_f32 = nullptr;
  // kNvfp4Row16 only: the per-matrix weight_scale_2.
  float global_scale = 1.0f;
};

}  // namespace dsv4::kernels
