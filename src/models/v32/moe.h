// The V3.2 feed-forward sublayers (spec §14.4): the dense SwiGLU FFN of the first
// first_k_dense_replace layers, and the mixture of experts of the others: sigmoid router with
// group-limited selection on the bias-corrected scores, unclamped SwiGLU experts whose output
// (after down_proj) is multiplied by the routing weight, a shared expert, FP32 combine
// (models/common/moe_combine.h). Under expert parallelism (DEP) MoeForwardParallel runs the
// same layer with this rank holding only some routed experts.
#pragma once

#include <cstdint>
#include <vector>

#include "core/bf16.h"
#include "core/thread_pool.h"
#include "checkpoint/config.h"
#include "dist/expert_parallel.h"
#include "kernels/cpu/workspace.h"
#include "models/common/expert_groups.h"
#include "models/common/moe_combine.h"
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

// Grow-only scratch of the MoE, kept by the caller across layers (one per forward; not
// shared between threads). Its contents never change a result.
struct MoeScratch {
  std::vector<float> logits;       // FP32 [n, E]: router logits
  std::vector<int32_t> expert_of;  // [n, k]: each row's experts, in selection order
  std::vector<float> weight_of;    // FP32 [n, k]: their routing weights
  models::ExpertGroups groups;
  std::vector<float> acc;          // FP32 [n, D]: the combine
  std::vector<BF16> xs, ys;        // BF16 [m, D]: one expert's gathered rows and outputs
  models::ParallelMoeScratch parallel;  // expert parallelism only
};

// Router logits and RouteToken of rows x BF16 [n, D] into scratch->expert_of and
// scratch->weight_of [n, k].
void RouteRows(ThreadPool& pool, const checkpoint::ModelConfig& c, const LayerWeights& w,
               const BF16* x, int64_t n, MoeScratch* scratch, kernels::Workspace* ws);

// x BF16 [n, D] (after post_attention_layernorm); out BF16 [n, D]. Each routed expert runs
// once per call on all the rows routed to it. Afterwards scratch->expert_of holds the rows'
// experts. ws: the kernels' scratch.
void MoeForward(ThreadPool& pool, const checkpoint::ModelConfig& c, const LayerWeights& w,
                const BF16* x, int64_t n, BF16* out, MoeScratch* scratch, kernels::Workspace* ws);

// MoeForward's contract across the ranks of `ep` (this rank's LayerWeights hold only its
// routed experts): every rank must call it for the same layer at the same time, n = 0
// included. Bit-identical to MoeForward for any number of ranks and any expert map.
void MoeForwardParallel(ThreadPool& pool, const checkpoint::ModelConfig& c, const LayerWeights& w,
                        dist::ExpertParallel& ep, const BF16* x, int64_t n, BF16* out,
                        MoeScratch* scratch, kernels::Workspace* ws);

// Dense SwiGLU FFN: out = down(bf16(silu(gate x) · up x)), x and out BF16 [n, D]. Each row's
// output depends on that row alone.
void DenseFfnForward(ThreadPool& pool, const FfnWeights& f, const BF16* x, int64_t n, BF16* out,
                     kernels::Workspace* ws);

}  // namespace dsv4::v32
