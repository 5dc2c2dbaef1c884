// The attention sublayer of one V4 layer (spec §6, §9), whole-sequence like the official
// reference's prefill from position 0: all queries, all window keys, all compressed entries,
// then one sink-augmented softmax per (position, head).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "checkpoint/config.h"
#include "checkpoint/tensor.h"
#include "models/v4/reference/compressor.h"
#include "models/v4/reference/indexer.h"
#include "models/v4/reference/weights.h"

namespace dsv4::v4::reference {

struct AttentionWeights {
  int64_t layer = 0;
  int64_t ratio = 0;                            // 0 SWA-only, 4 CSA, 128 HCA (any m > 0 works)
  std::vector<float> attn_sink;                 // F32 [H]
  Linear wq_a;                                  // [Q, D]
  std::vector<float> q_norm;                    // F32 [Q]
  Linear wq_b;                                  // [H·d, Q]
  Linear wkv;                                   // [d, D]
  std::vector<float> kv_norm;                   // F32 [d]
  Linear wo_a;                                  // kBf16 [G·R, H·d/G] (dequantised at load)
  Linear wo_b;                                  // [D, G·R]
  std::optional<CompressorWeights> compressor;  // ratio > 0
  std::optional<IndexerWeights> indexer;        // ratio == 4
};

// Loads "<prefix>attn.*" of the block under `prefix` ("layers.3.", "mtp.0."), layer id `layer`
// (its compress ratio and RoPE table).
Result<AttentionWeights> LoadAttention(const checkpoint::ModelConfig& c, const checkpoint::TensorSource& w,
                                       const std::string& prefix, int64_t layer);

// §6.3 for one head and its KV set, as the reference kernel computes it with the entries in
// the given order: s_j = fl32(q·kv_j)·scale (FP32 dot in ascending dims); m = max_j s_j;
// e_j = exp(s_j − m); denominator Σ_j e_j + exp(sink − m) in FP32; numerator Σ_j bf16(e_j)·kv_j
// (the unnormalised probabilities are cast to BF16 before the P·V product, FP32 accumulation);
// o = bf16(numerator / denominator). q: BF16 values [d]; kv_rows: pointers to BF16 [d] rows
// (at least one). Returns BF16 values [d].
std::vector<float> SinkAttention(std::span<const float> q, std::span<const float* const> kv_rows,
                                 float sink, float scale);

// The attention sublayer for all positions. x: BF16 values [T, D] (after attn_norm).
// Returns BF16 values [T, D] (the wo_b output). When `selected` is not null it receives, per
// position, the compressed entries attended to (ascending).
std::vector<float> AttentionForward(const checkpoint::ModelConfig& c, const AttentionWeights& aw,
                                    std::span<const float> x, int64_t num_tokens,
                                    std::vector<std::vector<int64_t>>* selected = nullptr);

// The window keys (§6.2: kv_norm(wkv x), RoPE, FP8 grid on dims [0, d_nope)) of rows x
// BF16 values [T, D] at positions pos0 .. pos0 + T - 1. Returns BF16 values [T, d].
std::vector<float> WindowKeys(const checkpoint::ModelConfig& c, const AttentionWeights& aw,
                              std::span<const float> x, int64_t num_tokens, int64_t pos0);

// A DSpark draft block's attention (spec §11.4 step 5): the rows x BF16 values [T, D] sit at
// positions pos0 .. pos0 + T - 1; every row's query attends to the `context` keys (BF16
// values [m, d], WindowKeys of the block's context, ascending) followed by all T rows' own
// window keys (no causal mask), in one sink softmax; de-rotation at the row's position,
// wo_a / wo_b. Returns BF16 values [T, D].
std::vector<float> DsparkAttentionForward(const checkpoint::ModelConfig& c,
                                          const AttentionWeights& aw, std::span<const float> x,
                                          int64_t num_tokens, int64_t pos0,
                                          std::span<const float> context);

}  // namespace dsv4::v4::reference
