// The V4 mixture-of-experts FFN (spec §10): sqrt-softplus router (bias for selection only,
// hash routing via tid2eid in the first num_hash_layers layers), clamped SwiGLU routed
// experts with the routing weight applied before w2, a shared expert clamped the same way
// (DeepSeek's current model.py; the first V4 release left it unclamped, spec §10.3), FP32
// combine.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/bf16.h"
#include "core/thread_pool.h"
#include "checkpoint/config.h"
#include "kernels/cpu/workspace.h"
#include "models/common/expert_groups.h"
#include "models/common/moe_combine.h"
#include "models/v4/weights.h"

namespace dsv4::v4 {

// Routing decision of one token: experts and their weights (already × routed_scaling_factor).
struct Route {
  std::vector<int32_t> experts;
  std::vector<float> weights;
};

// Reusable scratch of RouteToken (grow-only).
struct RouteScratch {
  std::vector<float> score;    // FP32 [E]
  std::vector<int32_t> order;  // [E]
};

// Router of one token (spec §10.1) into *r, reusing its capacity and `scratch`'s: no
// allocation once grown. logits FP32 [E] = x·gateᵀ.
void RouteToken(const checkpoint::ModelConfig& c, const LayerWeights& w, const float* logits,
                int32_t token, Route* r, RouteScratch* scratch);
// The same, returning a new Route.
Route RouteToken(const checkpoint::ModelConfig& c, const LayerWeights& w, const float* logits,
                 int32_t token);

// Grow-only scratch of MoeForward, kept by the caller across layers and steps (one per
// forward; not shared between threads): once grown to a step's rows, a call allocates
// nothing. Its contents never change a result.
struct MoeScratch {
  std::vector<float> logits;        // FP32 [n, E]: router logits
  std::vector<int32_t> expert_of;   // [n, k]
  std::vector<float> weight_of;     // FP32 [n, k]
  Route route;
  RouteScratch route_scratch;
  models::ExpertGroups groups;
  std::vector<float> acc;           // FP32 [n, D]: the combine
  std::vector<BF16> xs, ys;         // BF16 [m, D]: one expert's gathered rows and outputs
  std::vector<BF16> a, b, h;        // BF16 [m, I]: w1 x, w3 x, the gated product
  std::vector<float> ones;          // FP32 [n]: the shared expert's weights
  // Experts spread over the pool (MoeForward with many active experts): per pool thread a
  // one-thread pool that runs its linears inline, its own expert and kernel scratch; and the
  // outputs of every routed (row, expert) pair, BF16 [n * k, D] in group order.
  std::vector<std::unique_ptr<ThreadPool>> thread_pools;
  std::vector<std::unique_ptr<MoeScratch>> thread_scratch;
  std::vector<std::unique_ptr<kernels::Workspace>> thread_ws;
  std::vector<BF16> pair_ys;
  std::vector<int32_t> active_experts;  // the experts with rows, most rows first
  // Expert parallelism only (models/v4/moe_parallel.h): the exchange and its combine.
  models::ParallelMoeScratch parallel;
};

// x BF16 [n, D] (after HC_pre and ffn_norm) for tokens `tokens` [n]; out BF16 [n, D].
// Each routed expert runs once per call on all the rows routed to it (its weights are read
// once per step). scratch: the MoE's buffers; ws: the kernels' scratch.
// The parts of MoeForward that the expert-parallel MoE (moe_parallel.h) shares:
// Router logits and RouteToken of rows x BF16 [n, D] into scratch->expert_of and
// scratch->weight_of [n, k].
void RouteRows(ThreadPool& pool, const checkpoint::ModelConfig& c, const LayerWeights& w,
               const int32_t* tokens, const BF16* x, int64_t n, MoeScratch* scratch,
               kernels::Workspace* ws);
// Clamped SwiGLU expert on `rows` rows of x (spec §10.2; the shared expert too, §10.3):
// b = clamp(w3 x, -limit, limit), a = min(w1 x, limit), h = weight · SiLU(a) · b, y = w2 h.
// y BF16 [rows, D]; `weights` FP32 [rows] multiplies h before w2. Each row's output depends
// on that row alone (not on the others batched with it).
void Expert(ThreadPool& pool, const ExpertWeights& e, const BF16* x, int64_t rows,
            const float* weights, float limit, BF16* y, MoeScratch* scratch,
            kernels::Workspace* ws);
// The shared expert on x BF16 [n, D] (weight 1, clamped like the routed experts): its output
// BF16 [n, D] in scratch->ys, or nullptr when the layer has none or n == 0.
const BF16* SharedExpert(ThreadPool& pool, const checkpoint::ModelConfig& c, const LayerWeights& w,
                         const BF16* x, int64_t n, MoeScratch* scratch, kernels::Workspace* ws);
// SharedExpert, then models::AddAndStore (models/common/moe_combine.h).
void AddSharedAndStore(ThreadPool& pool, const checkpoint::ModelConfig& c, const LayerWeights& w,
                       const BF16* x, int64_t n, float* acc, BF16* out, MoeScratch* scratch,
                       kernels::Workspace* ws);

void MoeForward(ThreadPool& pool, const checkpoint::ModelConfig& c, const LayerWeights& w,
                const int32_t* tokens, const BF16* x, int64_t n, BF16* out, MoeScratch* scratch,
                kernels::Workspace* ws);

}  // namespace dsv4::v4
