#include "models/v32/moe.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "kernels/cpu/linear.h"
#include "core/grow.h"

namespace dsv4::v32 {

void DenseFfnForward(ThreadPool& pool, const FfnWeights& f, const BF16* x, int64_t n, BF16* out,
                     kernels::Workspace* ws) {
  const int64_t I = f.gate.out;
  std::vector<BF16> a(static_cast<size_t>(n * I)), b(static_cast<size_t>(n * I));
  kernels::Linear(pool, f.gate, x, n, a.data(), ws);
  kernels::Linear(pool, f.up, x, n, b.data(), ws);
  // silu and the product in FP32 from the BF16 GEMM outputs, rounded to BF16 for down_proj.
  for (int64_t i = 0; i < n * I; ++i) {
    const float av = Bf16ToF32(a[i]), bv = Bf16ToF32(b[i]);
    a[i] = F32ToBf16(av / (1.0f + std::exp(-av)) * bv);
  }
  kernels::Linear(pool, f.down, a.data(), n, out, ws);
}

Route RouteToken(const checkpoint::ModelConfig& c, const float* logits, const float* bias) {
  const int64_t E = c.n_routed_experts, k = c.num_experts_per_tok;
  const int64_t groups = c.n_group, per_group = E / groups;
  std::vector<float> score(static_cast<size_t>(E)), biased(static_cast<size_t>(E));
  for (int64_t e = 0; e < E; ++e) {
    score[e] = 1.0f / (1.0f + std::exp(-logits[e]));
    biased[e] = score[e] + bias[e];
  }
  // Group limiting: rank groups by the sum of their two best biased scores.
  std::vector<float> group_score(static_cast<size_t>(groups));
  for (int64_t g = 0; g < groups; ++g) {
    const float* b = biased.data() + g * per_group;
    int64_t best = 0;
    for (int64_t i = 1; i < per_group; ++i) best = b[i] > b[best] ? i : best;
    int64_t second = best == 0 ? 1 : 0;
    for (int64_t i = 0; i < per_group; ++i) {
      if (i != best && b[i] > b[second]) second = i;
    }
    group_score[g] = b[best] + b[second];
  }
  std::vector<int64_t> group_order(static_cast<size_t>(groups));
  std::iota(group_order.begin(), group_order.end(), 0);
  std::stable_sort(group_order.begin(), group_order.end(),
                   [&](int64_t a, int64_t b) { return group_score[a] > group_score[b]; });
  std::vector<float> masked(static_cast<size_t>(E), -std::numeric_limits<float>::infinity());
  for (int64_t j = 0; j < c.topk_group; ++j) {
    const int64_t g = group_order[j];
    std::copy_n(biased.data() + g * per_group, per_group, masked.data() + g * per_group);
  }
  std::vector<int32_t> order(static_cast<size_t>(E));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return masked[a] > masked[b]; });
  Route r;
  r.experts.assign(order.begin(), order.begin() + k);
  float sum = 0.0f;
  for (int32_t e : r.experts) sum += score[e];
  for (int32_t e : r.experts) {
    const float w = c.norm_topk_prob ? score[e] / sum : score[e];
    r.weights.push_back(w * static_cast<float>(c.routed_scaling_factor));
  }
  return r;
}

void RouteRows(ThreadPool& pool, const checkpoint::ModelConfig& c, const LayerWeights& w,
               const BF16* x, int64_t n, MoeScratch* s, kernels::Workspace* ws) {
  const int64_t E = c.n_routed_experts, k = c.num_experts_per_tok;
  float* logits = GrowTo(s->logits, n * E);
  if (n > 0) kernels::LinearBf16InF32(pool, w.router, x, n, logits, ws);
  s->expert_of.resize(static_cast<size_t>(n * k));  // [n, k]
  s->weight_of.resize(static_cast<size_t>(n * k));  // [n, k]
  for (int64_t t = 0; t < n; ++t) {
    const Route r = RouteToken(c, logits + t * E, w.router_bias);
    std::copy(r.experts.begin(), r.experts.end(), s->expert_of.begin() + t * k);
    std::copy(r.weights.begin(), r.weights.end(), s->weight_of.begin() + t * k);
  }
}

namespace {

// The shared expert on x BF16 [n, D] into scratch->ys: its output, or nullptr when the layer
// has none or n == 0.
const BF16* SharedExpert(ThreadPool& pool, const checkpoint::ModelConfig& c, const LayerWeights& w,
                         const BF16* x, int64_t n, MoeScratch* s, kernels::Workspace* ws) {
  if (!w.has_shared || n == 0) return nullptr;
  BF16* ys = GrowTo(s->ys, n * c.hidden_size);
  DenseFfnForward(pool, w.shared, x, n, ys, ws);
  return ys;
}

}  // namespace

void MoeForward(ThreadPool& pool, const checkpoint::ModelConfig& c, const LayerWeights& w,
                const BF16* x, int64_t n, BF16* out, MoeScratch* s, kernels::Workspace* ws) {
  const int64_t D = c.hidden_size, E = c.n_routed_experts, k = c.num_experts_per_tok;
  // Route every row, then group the rows by expert (models/common/expert_groups.h) so each
  // expert's weights are read once per step.
  RouteRows(pool, c, w, x, n, s, ws);
  models::ExpertGroups& groups = s->groups;
  groups.Build(s->expert_of, s->weight_of, k, E);
  // FP32 sums per row: routed experts in ascending id (a fixed per-token order, as the
  // reference's loop over experts), each BF16 output × its routing weight; shared last.
  float* acc = GrowTo(s->acc, n * D);
  std::fill_n(acc, n * D, 0.0f);
  for (int64_t e = 0; e < E; ++e) {
    const int64_t* rows = groups.rows.data() + groups.start[e];
    const int64_t m = groups.size(e);
    if (m == 0) continue;
    BF16* xs = GrowTo(s->xs, m * D);
    BF16* ys = GrowTo(s->ys, m * D);
    for (int64_t i = 0; i < m; ++i) std::copy_n(x + rows[i] * D, D, xs + i * D);
    DenseFfnForward(pool, w.experts[e], xs, m, ys, ws);
    for (int64_t i = 0; i < m; ++i) {
      const float g = groups.weights[groups.start[e] + i];
      for (int64_t d = 0; d < D; ++d) acc[rows[i] * D + d] += Bf16ToF32(ys[i * D + d]) * g;
    }
  }
  models::AddAndStore(n, D, acc, SharedExpert(pool, c, w, x, n, s, ws), out);
}

void MoeForwardParallel(ThreadPool& pool, const checkpoint::ModelConfig& c, const LayerWeights& w,
                        dist::ExpertParallel& ep, const BF16* x, int64_t n, BF16* out,
                        MoeScratch* s, kernels::Workspace* ws) {
  RouteRows(pool, c, w, x, n, s, ws);
  // The experts are unweighted (their routing weights apply at the combine, after down_proj).
  models::MoeAcrossRanks(
      ep, x, n, c.hidden_size, c.n_routed_experts, c.num_experts_per_tok, s->expert_of,
      s->weight_of, models::RoutingWeightAt::kCombine,
      [&](int64_t e, const BF16* xs, int64_t m, const float*, BF16* ys) {
        DenseFfnForward(pool, w.experts[e], xs, m, ys, ws);
      },
      [&] { return SharedExpert(pool, c, w, x, n, s, ws); }, out, &s->parallel);
}

}  // namespace dsv4::v32
