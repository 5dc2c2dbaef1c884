// The plain single-threaded reference forward of DeepSeek-V3.2 (spec §14), written directly
// from the spec and independently of the fast path in this folder, which it checks: it uses
// only the core numeric formats (BF16, E4M3, act_quant), the tensor source and its per-tensor
// linear formats (checkpoint/linear_format.h: FP8 or BF16 per linear), computes its
// own RoPE table, uses the O(n²) Hadamard matrix, and runs MLA in the up-projected (MHA) form
// over the whole sequence with the DSA index mask, as DeepSeek's corrected reference runs
// prefill: k_nope and v are per-head up-projections of the cached (FP8-simulated) latent,
// scores over [q_nope ‖ q_rope] · [k_nope ‖ k_rope].
//
// Precision map: the fast path's (spec §3 analogues): BF16 activations, FP8 act-quant per
// 128 before FP8 linears, FP32 accumulation; attention logits and softmax in FP32, the
// probabilities rounded to BF16 before P·V. (The official PyTorch reference rounds the
// logits themselves to BF16; neither engine reproduces that.)
//
// Meant for tiny models (weights are decoded to FP32 arrays layer by layer; nothing is fast).
// Thread-compatible: no shared state.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/status.h"
#include "checkpoint/config.h"
#include "checkpoint/tensor.h"

namespace dsv4::v32::reference {

// What each layer decided, for comparison with other runs.
struct LayerTrace {
  std::vector<std::vector<int64_t>> selected;  // per position: the DSA top-k, ascending
  std::vector<std::vector<int32_t>> experts;   // per position: routed experts, ascending
                                               // (empty for dense-FFN layers)
};
struct ForwardTrace {
  std::vector<LayerTrace> layers;  // [num_hidden_layers]
};

// Logits after every position: FP32 [tokens.size(), vocab_size]; row t depends on
// tokens[0..t] only. Errors: InvalidArgument for a non-V3.2 config or a token outside
// [0, vocab_size) (naming its position and id); the source's errors for missing or
// mis-shaped tensors. `trace`, when not null, receives every layer's decisions.
Result<std::vector<float>> Forward(const checkpoint::ModelConfig& c, const checkpoint::TensorSource& w,
                                   std::span<const int32_t> tokens, ForwardTrace* trace = nullptr);

}  // namespace dsv4::v32::reference
