// Manifold-constrained hyper-connections (spec §5): hc_mult residual streams per token, mixed
// into one sublayer input (HC_pre, with a Sinkhorn-projected mixing matrix), expanded back
// (HC_post), and collapsed at the end (HC_head). All math FP32, streams BF16.
#pragma once

#include <cstdint>
#include <vector>

#include "core/bf16.h"
#include "model/v4/weights.h"

namespace dsv4::v4 {

struct MhcParams {
  int64_t hc = 4;            // streams
  int64_t dim = 0;           // D
  int64_t sinkhorn_iters = 20;
  float hc_eps = 1e-6f;
  float norm_eps = 1e-6f;
};

// What HC_pre keeps for HC_post of the same sublayer.
struct MhcMix {
  std::vector<float> post;  // [hc]
  std::vector<float> comb;  // [hc, hc], row j mixes into columns (C[j][k])
};

// Sinkhorn projection of a [hc, hc] logit matrix in place (spec §5.1 step 4): row softmax +
// eps, column normalisation, then (row, column) normalisations iters-1 times.
void Sinkhorn(float* m, int64_t hc, int64_t iters, float eps);

// X BF16 [hc, D] -> u BF16 [D]; fills `mix` for HC_post.
void HcPre(const MhcParams& p, const MhcWeights& w, const BF16* x, BF16* u, MhcMix* mix);
// X' [k] = bf16(post_k * F + Σ_j C[j][k] X_j), in place on X BF16 [hc, D]; f BF16 [D].
void HcPost(const MhcParams& p, const MhcMix& mix, const BF16* f, BF16* x);
// X BF16 [hc, D] -> h BF16 [D] (spec §5.4).
void HcHead(const MhcParams& p, const MhcWeights& w, const BF16* x, BF16* h);

}  // namespace dsv4::v4
