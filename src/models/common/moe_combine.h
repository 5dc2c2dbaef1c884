// The canonical combine of a mixture-of-experts layer, shared by V4 (models/v4/moe.h,
// moe_parallel.h) and V3.2 (models/v32/moe.h): a row's routed expert outputs are added in FP32
// from zero in ascending expert id, the shared expert last, one BF16 rounding at the end.
//
// Under expert parallelism (DEP) it is also the model-independent part of the layer
// (MoeAcrossRanks). Once the model's router has chosen each local row's experts, of which this
// rank holds only some (dist::ExpertMap), every row goes to the ranks holding its experts
// (dist::ExpertExchange::Dispatch), each rank runs its experts on what it received, each
// expert once on all of its pairs, and the outputs come back (StartCombine / FinishCombine,
// the model's shared expert running on the local rows in between). The owner of a row then
// adds them in the canonical order above. An expert's output for a row depends on that row
// alone, so the result is bit-identical to one process for any number of ranks and any
// expert map.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/bf16.h"
#include "core/function_ref.h"
#include "dist/expert_exchange.h"
#include "dist/expert_parallel.h"
#include "models/common/expert_groups.h"

namespace dsv4::models {

// acc FP32 [n, D] holds the routed experts' sums: adds `shared` (BF16 [n, D], or nullptr;
// last, as the canonical order says) and stores out = BF16(acc).
void AddAndStore(int64_t n, int64_t D, float* acc, const BF16* shared, BF16* out);

// Where a routed expert's weight g enters the sum: inside the expert (V4: g multiplies the
// gated product before w2, the sum adds y), or at the combine (V3.2: the sum adds y · g in
// FP32 after down_proj).
enum class RoutingWeightAt { kExpert, kCombine };

// Grow-only scratch of MoeAcrossRanks, kept by the caller across layers and steps; once grown
// to a step's rows a call allocates nothing. Its contents never change a result.
struct ParallelMoeScratch {
  dist::ExpertExchange exchange;  // the rows sent and received, the results returned
  ExpertGroups groups;            // the received pairs by expert (rows = pair indices)
  std::vector<BF16> pair_out;     // BF16 [pairs, D]: this rank's output per received pair
  std::vector<BF16> xs, ys;       // BF16 [m, D]: one expert's gathered rows and outputs
  std::vector<float> acc;         // FP32 [n, D]: the combine
  std::vector<int32_t> order;     // [k]: a row's choices by ascending expert id
};

// Routed expert `expert` (held by this rank) on `rows` rows x BF16 [rows, D] with their
// routing weights FP32 [rows]; writes y BF16 [rows, D]. Each row's output must depend on that
// row alone.
using RoutedExpertFn =
    FunctionRef<void(int64_t expert, const BF16* x, int64_t rows, const float* weights, BF16* y)>;
// The shared expert on this rank's rows: its output BF16 [n, D], or nullptr when the layer has
// none or n == 0. Runs while the other ranks finish their experts.
using SharedExpertFn = FunctionRef<const BF16*()>;

// The routed experts and the combine of one MoE layer across the ranks of `ep`: local rows
// x BF16 [n, D] chose experts expert_of [n, k] (ids < E) with weights weight_of [n, k];
// out BF16 [n, D] = bf16(Σ over the row's experts in ascending id of y (kExpert) or y·g
// (kCombine), + shared), summed in FP32 from zero. Every rank must call it for the same layer
// at the same time, n = 0 included (a rank without rows still computes its experts for the
// others' rows).
void MoeAcrossRanks(dist::ExpertParallel& ep, const BF16* x, int64_t n, int64_t D, int64_t E,
                    int64_t k, std::span<const int32_t> expert_of,
                    std::span<const float> weight_of, RoutingWeightAt weight_at,
                    RoutedExpertFn routed, SharedExpertFn shared, BF16* out,
                    ParallelMoeScratch* scratch);

}  // namespace dsv4::models
