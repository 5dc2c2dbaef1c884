// Manifold-constrained hyper-connections (spec §5): HC_pre with Sinkhorn, HC_post, HC_head.
// All mixing arithmetic is FP32; the hc streams are BF16 values. One token at a time.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "checkpoint/tensor.h"

namespace dsv4::v4::reference {

// How many of each Sinkhorn operation ran (lets tests check the exact schedule).
struct SinkhornOpCounts {
  int softmax = 0;  // row softmax (+eps): always 1
  int row = 0;      // row normalisations: iters − 1
  int col = 0;      // column normalisations: iters
};

// §5.1 step 4, all FP32. m: [hc, hc] row-major mixing logits M (row index j), replaced by C:
// C = softmax_rows(M) + eps; C /= (column sums + eps); then (iters − 1) times: C /= (row sums +
// eps), C /= (column sums + eps). Sums in ascending index order. iters >= 1.
void Sinkhorn(std::span<float> m, int64_t hc, int64_t iters, float eps,
              SinkhornOpCounts* counts = nullptr);

// Parameters of one HC_pre site (hc_attn_* / hc_ffn_*) or of HC_head.
struct HcParams {
  std::vector<float> fn;     // F32 [mix, hc·D]; mix = (2 + hc)·hc for HC_pre, hc for HC_head
  std::vector<float> base;   // F32 [mix]
  std::vector<float> scale;  // F32 [3] for HC_pre, [1] for HC_head
};

// Loads "<prefix>_fn", "<prefix>_base", "<prefix>_scale" (e.g. prefix "layers.0.hc_attn").
// `head` selects the HC_head shapes.
Result<HcParams> LoadHcParams(const checkpoint::TensorSource& w, const std::string& prefix, int64_t hc,
                              int64_t dim, bool head);

struct HcMix {
  std::vector<float> post;  // F32 [hc]
  std::vector<float> comb;  // F32 [hc, hc], C after Sinkhorn (row j = old stream j)
};

struct HcOptions {
  int64_t hc = 4;
  int64_t sinkhorn_iters = 20;
  float norm_eps = 1e-6f;  // ρ = 1/sqrt(mean(x̄²) + norm_eps)
  float hc_eps = 1e-6f;
};

// §5.1. x: BF16 values [hc, D] (one token's streams, stream-major). Returns u = bf16(Σ_j pre_j
// X_j) (BF16 values [D]) and fills `mix` with post and C. ρ's sum of squares and the mixes
// x̄·fn_iᵀ are canonical 8-lane dot products (DotLanes8); the stream sums ascend in j.
std::vector<float> HcPre(std::span<const float> x, const HcParams& p, const HcOptions& o,
                         HcMix* mix);

// §5.2: X'_k = bf16(post_k·F + Σ_j C_{j,k}·X_j) (FP32; column k of C mixes into stream k).
// f: BF16 values [D]; x: BF16 values [hc, D], replaced by X'.
void HcPost(std::span<const float> f, std::span<float> x, const HcMix& mix, int64_t hc);

// §5.4: h = bf16(Σ_j (sigmoid(ν_j·scale + base_j) + hc_eps)·X_j). x: BF16 values [hc, D].
std::vector<float> HcHead(std::span<const float> x, const HcParams& p, const HcOptions& o);

}  // namespace dsv4::v4::reference
