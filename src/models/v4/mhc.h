// Manifold-constrained hyper-connections (spec §5): hc_mult residual streams per token, mixed
// into one sublayer input (HC_pre, with a Sinkhorn-projected mixing matrix), expanded back
// (HC_post), and collapsed at the end (HC_head). All math FP32, streams BF16.
//
// Every function works on all rows of a forward at once: the mix projections x̄·fnᵀ run as
// kernels::LinearF32 GEMMs over blocks of 64 rows (the canonical 8-lane dot order, like the
// reference's DotLanes8), and the per-row rest runs over the pool, vectorised across columns.
// Each row's bits do not depend on the number of rows or threads. hc <= 8. Scratch comes
// from an MhcWorkspace owned by the caller.
#pragma once

#include <cstdint>
#include <vector>

#include "core/bf16.h"
#include "core/thread_pool.h"
#include "kernels/cpu/workspace.h"
#include "models/v4/weights.h"

namespace dsv4::v4 {

struct MhcParams {
  int64_t hc = 4;            // streams
  int64_t dim = 0;           // D
  int64_t sinkhorn_iters = 20;
  float hc_eps = 1e-6f;
  float norm_eps = 1e-6f;
};

// What HC_pre keeps for HC_post of the same sublayer, for every row.
struct MhcMixes {
  std::vector<float> post;  // FP32 [rows, hc]
  std::vector<float> comb;  // FP32 [rows, hc, hc]: C after Sinkhorn, row j mixes into columns
};

// Grow-only scratch shared by every mHC call of a forward (one per forward, not shared
// between threads); once grown, the calls allocate nothing.
struct MhcWorkspace {
  kernels::Workspace kernels;  // LinearF32's scratch
  std::vector<float> xf;   // FP32 [block rows, hc*D]: the streams of a row block, promoted
  std::vector<float> rho;  // FP32 [block rows]: 1/sqrt(mean(x̄²) + eps)
  std::vector<float> mu;   // FP32 [block rows, mix]: x̄·fnᵀ
};

// Sinkhorn projection of a [hc, hc] logit matrix in place (spec §5.1 step 4): row softmax +
// eps, column normalisation, then (row, column) normalisations iters-1 times. Sums ascending.
void Sinkhorn(float* m, int64_t hc, int64_t iters, float eps);

// X BF16 [rows, hc, D] -> u BF16 [rows, D]; fills `mix` (resized to rows) for HcPost.
void HcPre(ThreadPool& pool, const MhcParams& p, const MhcWeights& w, const BF16* x,
           int64_t rows, BF16* u, MhcMixes* mix, MhcWorkspace* ws);
// X'[k] = bf16(post_k * F + Σ_j C[j][k] X_j) per row, in place on X BF16 [rows, hc, D];
// f BF16 [rows, D]; `mix` from the HcPre of the same rows.
void HcPost(ThreadPool& pool, const MhcParams& p, const MhcMixes& mix, const BF16* f,
            int64_t rows, BF16* x);
// X BF16 [rows, hc, D] -> h BF16 [rows, D] (spec §5.4).
void HcHead(ThreadPool& pool, const MhcParams& p, const MhcWeights& w, const BF16* x,
            int64_t rows, BF16* h, MhcWorkspace* ws);

}  // namespace dsv4::v4
