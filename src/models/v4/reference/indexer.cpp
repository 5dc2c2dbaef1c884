#include "models/v4/reference/indexer.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "core/bf16.h"
#include "core/check.h"
#include "models/v4/reference/numerics.h"

namespace dsv4::v4::reference {

Result<IndexerWeights> LoadIndexer(const checkpoint::ModelConfig& c, const checkpoint::TensorSource& w,
                                   const std::string& prefix) {
  const std::string p = prefix + "attn.indexer.";
  IndexerWeights iw;
  DSV4_ASSIGN_OR_RETURN(
      iw.wq_b,
      LoadDenseLinear(c, w, p + "wq_b", c.index_n_heads * c.index_head_dim, c.q_lora_rank));
  DSV4_ASSIGN_OR_RETURN(iw.weights_proj, LoadBf16Linear(w, p + "weights_proj.weight",
                                                        c.index_n_heads, c.hidden_size));
  DSV4_ASSIGN_OR_RETURN(iw.compressor,
                        LoadCompressor(c, w, p + "compressor.", 4, c.index_head_dim));
  return iw;
}

int64_t NumVisibleEntries(int64_t t, int64_t ratio) { return (t + 1) / ratio; }

float IndexScore(std::span<const float> q, std::span<const float> weights,
                 std::span<const float> key) {
  const size_t head_dim = key.size();
  DSV4_CHECK(q.size() == weights.size() * head_dim);
  float acc = 0.0f;
  for (size_t h = 0; h < weights.size(); ++h) {
    const float dot = DotLanes8(q.data() + h * head_dim, key.data(), head_dim);
    const float relu = std::max(RoundBf16(dot), 0.0f);
    acc += RoundBf16(relu * weights[h]);
  }
  return RoundBf16(acc);
}

std::vector<int64_t> TopKIndices(std::span<const float> scores, int64_t k) {
  std::vector<int64_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  // Stable sort by descending score keeps equal scores in ascending index order.
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return scores[a] > scores[b]; });
  order.resize(static_cast<size_t>(std::min<int64_t>(k, static_cast<int64_t>(order.size()))));
  std::sort(order.begin(), order.end());
  return order;
}

IndexerOutput RunIndexer(const checkpoint::ModelConfig& c, const IndexerWeights& iw,
                         std::span<const float> inv_freq, std::span<const float> x,
                         std::span<const float> qr, int64_t num_tokens) {
  const int64_t num_heads = c.index_n_heads, head_dim = c.index_head_dim;
  const int64_t rope_dim = c.qk_rope_head_dim, dim = c.hidden_size, q_rank = c.q_lora_rank;
  const float norm_eps = static_cast<float>(c.rms_norm_eps);
  // Python evaluates head_dim^-0.5 · n_heads^-0.5 in double; the BF16 multiply uses it as FP32.
  const float weight_scale = static_cast<float>(std::pow(static_cast<double>(head_dim), -0.5) *
                                                std::pow(static_cast<double>(num_heads), -0.5));
  IndexerOutput out;
  out.keys =
      CompressEntries(iw.compressor, x, num_tokens, {inv_freq, norm_eps, EntryQuant::kHadamardFp4});
  out.selected.resize(static_cast<size_t>(num_tokens));
  std::vector<float> scores;
  for (int64_t t = 0; t < num_tokens; ++t) {
    // Query: BF16 [num_heads, head_dim], RoPE at t on the last rope_dim dims of each head,
    // Hadamard per head, FP4 simulation per head (§8 steps 1-3).
    std::vector<float> q = Apply(iw.wq_b, qr.subspan(t * q_rank, q_rank));
    for (int64_t h = 0; h < num_heads; ++h) {
      std::span<float> qh = std::span<float>(q).subspan(h * head_dim, head_dim);
      ApplyRope(qh.subspan(head_dim - rope_dim), inv_freq, t, /*inverse=*/false);
      HadamardBf16(qh);
      Fp4SimulateBf16(qh);
    }
    // Head weights: BF16 linear, then × scale rounded to BF16 (§8 step 4).
    std::vector<float> weights = Apply(iw.weights_proj, x.subspan(t * dim, dim));
    for (float& wv : weights) wv = RoundBf16(wv * weight_scale);
    const int64_t visible = NumVisibleEntries(t, 4);
    scores.assign(static_cast<size_t>(visible), 0.0f);
    for (int64_t i = 0; i < visible; ++i) {
      scores[i] =
          IndexScore(q, weights, std::span<const float>(out.keys).subspan(i * head_dim, head_dim));
    }
    out.selected[t] = TopKIndices(scores, c.index_topk);
  }
  return out;
}

}  // namespace dsv4::v4::reference
