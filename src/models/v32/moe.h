// The V3.2 feed-forward sublayers (spec §14.4): the dense SwiGLU FFN of the first
// first_k_dense_replace layers, and the mixture of experts of the others: sigmoid router with
// group-limited selection on the bias-corrected scores, unclamped SwiGLU experts whose output
// (after down_proj) is multiplied by the routing weight, a shared expert, FP32 combine.
#pragma once

#include <cstdint>
#include <vector>

#include "core/bf16.h"
#include "core/thread_pool.h"
#include "checkpoint/config.h"
#include "kernels/cpu/workspace.h"
#include "models/v32/weights.h"

namespace dsv4::v32 {

// Routing decision of one token: experts in selection order (best biased score first) and
// their weights (already × routed_scaling_factor).
struct Route {
  std::vector<int32_t> experts;
  std::vector<float> weights;
};

// Router of one token (spec §14.4). logits FP32 [E] = x·gateᵀ; bias FP32 [E]
// (e_score_correction_bias). s = sigmoid(logits); selection on b = s + bias: groups of
// E / n_group experts, group score = sum of its two largest b, the topk_group best groups
// kept, then the num_experts_per_tok best experts among them; ties go to the lower index.
// Weights: the unbiased s of the chosen experts, divided by their sum (norm_topk_prob),
// × routed_scaling_factor.
Route RouteToken(const checkpoint::ModelConfig& c, const float* logits, const float* bias);

// x BF16 [n, D] (after post_attention_layernorm); out BF16 [n, D]. When `routes` is not
// null, appends each token's routed experts (ascending ids) to it. ws: the kernels' scratch.
void MoeForward(ThreadPool& pool, const checkpoint::ModelConfig& c, const LayerWeights& w, const BF16* x,
                int64_t n, BF16* out, kernels::Workspace* ws,
                std::vector<std::vector<int32_t>>* routes = nullptr);

// Dense SwiGLU FFN: out = down(bf16(silu(gate x) · up x)), x and out BF16 [n, D].
void DenseFfnForward(ThreadPool& pool, const FfnWeights& f, const BF16* x, int64_t n, BF16* out,
                     kernels::Workspace* ws);

}  // namespace dsv4::v32
