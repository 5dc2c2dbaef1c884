// Random weights of one attention sublayer at real dimensions, in the forms the engine's
// loaders hand to the kernels (v4/weights.h, v32/weights.h): FP8 E4M3 linears with 128x128
// block scales (E8M0 for V4, F32 weight_scale_inv for V3.2), V4 wo_a dequantised to BF16,
// compressor and V3.2 weights_proj matrices promoted to FP32, V3.2 kv_b_proj split into the
// per-head BF16 absorbed factors. Only what attention reads is made: no MoE, router, mHC,
// embedding or head (a real layer with its experts would not fit in a small machine, and
// the decode bench measures attention). MakeV4BlockWeights adds the rest of one V4 block
// (norms, mHC, router, MXFP4 routed experts repacked as the loader repacks them, FP8 shared
// expert) for `dsv4 bench layer`, one layer at a time. Values are random in a realistic range (|w| ~ 0.01,
// no NaN codes), so activations stay finite and normal.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "checkpoint/config.h"
#include "core/large_buffer.h"
#include "core/thread_pool.h"
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
  // n kFp4Row32 matrices: MXFP4 E2M1 codes [out, in/2] (every nibble random, magnitudes <= 6)
  // with E8M0 2^-8 scales [out, in/32]; the codes repacked into the FP4 tiles when the active
  // kernels are the AVX-512 BF16 ones and the shape allows it, as LinearLoader::Linear does.
  // Filled on `pool` when given (each matrix from its own seed: the same bytes either way).
  std::vector<kernels::LinearWeight> Fp4(int64_t n, int64_t out, int64_t in, ThreadPool* pool);
  // kF32 over FP32 values [out, in] in [-bound, bound] (mHC's FP32 `fn`).
  kernels::LinearWeight F32Values(int64_t out, int64_t in, float bound);
  const float* Vector(int64_t n, float lo, float hi);   // FP32 [n], uniform (not counted)
  // Bytes and multiply-adds per row of every linear made so far (counters are cumulative:
  // callers take differences to split them by part).
  int64_t linear_bytes() const { return linear_bytes_; }
  int64_t linear_macs() const { return linear_macs_; }

 private:
  uint8_t* Alloc(int64_t bytes);
  uint64_t seed_;
  int64_t linear_bytes_ = 0;
  int64_t linear_macs_ = 0;
  std::vector<LargeBuffer> buffers_;
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

// One full V4 block: attention (as MakeV4AttentionWeights) + norms, hc_attn/hc_ffn, the router
// (gate promoted BF16; bias, or a tid2eid table in hash layers), n_routed_experts MXFP4
// experts and the FP8 shared expert. The byte and multiply-add counts split what every row
// reads (dense: attention, mHC, router, shared expert) from one routed expert's share.
struct V4BlockWeights {
  explicit V4BlockWeights(uint64_t seed) : buffers(seed) {}
  WeightBuffers buffers;
  v4::LayerWeights w;
  std::vector<int32_t> tid2eid;  // [vocab, top_k] (hash layers only)
  int64_t attention_bytes = 0, attention_macs = 0;  // attention linears (with compressors)
  int64_t dense_bytes = 0, dense_macs = 0;          // all but the routed experts
  int64_t expert_bytes = 0, expert_macs = 0;        // one routed expert (w1, w3, w2)
};

// Layer `layer` of `c` (its type from c.ratio(layer)).
std::unique_ptr<V4AttentionWeights> MakeV4AttentionWeights(const checkpoint::ModelConfig& c,
                                                           int64_t layer, uint64_t seed);
// The routed experts are filled on `pool` when given.
std::unique_ptr<V4BlockWeights> MakeV4BlockWeights(const checkpoint::ModelConfig& c, int64_t layer,
                                                   uint64_t seed, ThreadPool* pool = nullptr);
std::unique_ptr<V32AttentionWeights> MakeV32AttentionWeights(const checkpoint::ModelConfig& c,
                                                             int64_t layer, uint64_t seed);

}  // namespace dsv4::bench
