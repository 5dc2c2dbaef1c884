// The plain single-threaded reference forward of DeepSeek-V4 (spec §2–§11), written directly
// from the spec and independently of the fast path in src/model/v4, which it checks.
//
// Structure follows the official reference's prefill from start_pos 0 over the whole sequence:
// per layer, every position at once (all window keys, all compressed entries pooled straight
// from the token projections, indexer scores for every (t, i)), with plain ascending loops and
// FP32 accumulation, and every BF16/FP8/FP4 rounding point of the precision map (§3).
// Deliberately not a streaming design: comparing the two catches state-handling bugs.
//
// Meant for tiny models (weights are decoded to FP32 arrays per layer; nothing is fast).
// Thread-compatible: no shared state.
//
// Where the spec leaves room, the official model.py / kernel.py operation order is followed:
//  * FP8 linear: each 128-K partial sum × (sx·Sw); FP4: (partial × sx) × Sw per 32-chunk.
//  * HC_post: post_k·F + (Σ_j C_jk·X_j), the sum formed first (PyTorch expression order).
//  * Compressor pooling: Σ_p V_p·(e_p / Σe) (explicit softmax, then the weighted sum).
//  * Attention (§6.3): one pass with the global max (the kernel's online softmax is exact for
//    ≤ 64 entries); unnormalised bf16(e_j) multiply V, sink only in the denominator, then a
//    division by the denominator; KV set order: window ascending, then compressed ascending.
//  * Indexer score: bf16(Σ_h bf16(ReLU(bf16(q_h·k)) · w_h)), FP32 sums; top-k ties go to the
//    lower entry index; expert top-k ties to the lower expert id.
//  * RoPE: angle fl32(p·inv'_k), cos/sin evaluated in FP32 (cosf/sinf, as torch.polar).
//  * Hadamard: fast Walsh–Hadamard butterflies (a+b, a−b), strides 1, 2, 4, … ascending,
//    then × n^-1/2.
//  * mHC mixes (§5.1 steps 1-2): x̄·x̄ and x̄·fn_iᵀ in the canonical 8-lane dot order
//    (DotLanes8), like every FP32-weight linear.
//  * MoE combine: routed outputs in ascending expert id, shared expert last.
// All other reductions are plain ascending FP32 loops.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/status.h"
#include "checkpoint/config.h"
#include "checkpoint/tensor.h"
#include "models/v4/reference/block.h"

namespace dsv4::v4::reference {

// Logits after every position: FP32 [tokens.size(), vocab_size] row-major; row t depends on
// tokens[0..t] only. Single-threaded, plain loops. MTP is not run (mtp.h runs it from the
// last layer's trace streams). An empty sequence gives an empty vector.
// Errors: InvalidArgument naming the position and id of a token outside [0, vocab_size);
// Unimplemented / InvalidArgument for a config this reference cannot run (not V4, a scoring
// function other than sqrtsoftplus, dimensions the block quantisation cannot tile); NotFound /
// InvalidArgument from the source for missing or mis-shaped tensors.
Result<std::vector<float>> Forward(const checkpoint::ModelConfig& c, const checkpoint::TensorSource& w,
                                   std::span<const int32_t> tokens);

struct ForwardTrace {
  std::vector<LayerTrace> layers;  // [num_hidden_layers]
};

// Forward that also fills `trace` (when not null) with every layer's intermediates.
Result<std::vector<float>> Forward(const checkpoint::ModelConfig& c, const checkpoint::TensorSource& w,
                                   std::span<const int32_t> tokens, ForwardTrace* trace);

// The checks Forward applies to `c` before reading any weight.
Status CheckReferenceSupports(const checkpoint::ModelConfig& c);
// InvalidArgument naming the position and id of the first token outside [0, vocab_size).
Status CheckTokens(const checkpoint::ModelConfig& c, std::span<const int32_t> tokens);

}  // namespace dsv4::v4::reference
