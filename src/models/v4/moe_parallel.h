// The V4 MoE under expert parallelism (DEP): this rank holds only some routed experts
// (dist::ExpertMap), so each row goes to the ranks holding its experts and their outputs come
// back (models::MoeAcrossRanks, models/common/moe_combine.h). The router and the shared expert
// run where the row lives (their weights are replicated); the shared expert runs while the
// other ranks finish their experts and the outputs come back. The owner of a row adds its
// experts' outputs exactly as MoeForward does (FP32, ascending expert id, shared expert last)
// and every expert's output for a row depends on that row alone, so the result is
// bit-identical to one process for any number of ranks and any expert map.
#pragma once

#include <cstdint>

#include "core/bf16.h"
#include "core/thread_pool.h"
#include "checkpoint/config.h"
#include "dist/expert_parallel.h"
#include "kernels/cpu/workspace.h"
#include "models/v4/moe.h"
#include "models/v4/weights.h"

namespace dsv4::v4 {

// MoeForward's contract (x BF16 [n, D] for `tokens` [n], out BF16 [n, D]) across the ranks of
// `ep`: every rank must call it for the same layer at the same time, n = 0 included (a rank
// without tokens still computes its experts for the others' rows).
void MoeForwardParallel(ThreadPool& pool, const checkpoint::ModelConfig& c, const LayerWeights& w,
                        dist::ExpertParallel& ep, const int32_t* tokens, const BF16* x, int64_t n,
                        BF16* out, MoeScratch* scratch, kernels::Workspace* ws);

}  // namespace dsv4::v4
