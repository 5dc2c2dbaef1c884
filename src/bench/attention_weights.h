// Random weights of one attention sublayer at real dimensions, in the forms the engine's
// loaders hand to the kernels (v4/weights.h, v32/weights.h): FP8 E4M3 linears with 128x128
// block scales (E8M0 for V4, F32 weight_scale_inv for V3.2), V4 wo_a dequantised to BF16,
// compressor and V3.2 weights_proj matrices promoted to FP32, V3.2 kv_b_proj split into the
// per-head BF16 absorbed factors. Only what attention reads is made: no MoE, router, mHC,
// embedding or head (a real layer with its experts would not fit in a small machine, and
// the decode bench measures attention). Values are random in a realistic range (|w| ~ 0.01,
// no NaN codes), so activations stay finite and normal.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "checkpoint/config.h"
#include "models/v32/weights.h"
#include "models/v4/weights.h"

namespace dsv4::bench {

// Owns the buffers the weight views point into and counts the bytes of the linears'
// matrices (codes, scales, BF16 or FP32 values): what one decode token reads.
class WeightBuffers {
 public:
  explicit WeightBuffers(uint64_t seed) : seed_(seed) {}
  // FP8 E4M3 [out, in] with 128x128 block scales: E8M0 2^-7 (`f32_scales` false) or F32 2^-7.
  kernels::LinearWeight Fp8(int64_t out, int64_t in, bool f32_scales);
  kernels::LinearWeight Bf16(int64_t out, int64_t in);  // BF16 [out, in]
  // kF32 over BF16 [out, in] (a BF16 checkpoint matrix used in FP32, as the loaders hold it)
  kernels::LinearWeight F32(int64_t out, int64_t in);
  const float* Vector(int64_t n, float lo, float hi);   // FP32 [n], uniform (not counted)
  int64_t linear_bytes() const { return linear_bytes_; }

 private:
  uint8_t* Alloc(int64_t bytes);
  uint64_t seed_;
  int64_t linear_bytes_ = 0;
  std::vector<std::unique_ptr<uint8_t[]>> buffers_;
};

struct V4AttentionWeights {
  explicit V4AttentionWeights(uint64_t seed) : buffers(seed) {}
  WeightBuffers buffers;
  v4::LayerWeights w;  // attention fields only (experts empty)
};

struct V32AttentionWeights {
  explicit V32AttentionWeights(uint64_t seed) : buffers(seed) {}
  WeightBuffers buffers;
  v32::LayerWeights w;  // attention fields only
};

// Layer `layer` of `c` (its type from c.ratio(layer)).
std::unique_ptr<V4AttentionWeights> MakeV4AttentionWeights(const checkpoint::ModelConfig& c,
                                                           int64_t layer, uint64_t seed);
std::unique_ptr<V32AttentionWeights> MakeV32AttentionWeights(const checkpoint::ModelConfig& c,
                                                             int64_t layer, uint64_t seed);

}  // namespace dsv4::bench
