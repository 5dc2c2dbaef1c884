#include "models/v4/moe.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <vector>

#include "kernels/cpu/linear.h"
#include "models/common/expert_groups.h"
#include "core/grow.h"

namespace dsv4::v4 {
namespace {

// PyTorch softplus (beta 1, threshold 20).
float Softplus(float x) { return x > 20.0f ? x : std::log1p(std::exp(x)); }

// MoeForward spreads whole experts over the pool once at least this many per thread are
// active (a decode batch of a few rows or more); below that each expert's linears are split.
constexpr int64_t kExpertsPerThread = 4;

// Every active routed expert of s->groups on one pool thread each (its linears inline on a
// one-thread pool: no hand-off per linear, which with 1-2 rows per expert cost as much as the
// weight reads), outputs into s->pair_ys [pairs, D] in group order. Each expert computes
// exactly what it computes alone (the linears' results do not depend on the thread count).
void RoutedExpertsSpread(ThreadPool& pool, const LayerWeights& w, const BF16* x, int64_t pairs,
                         int64_t D, float limit, MoeScratch* s) {
  const models::ExpertGroups& groups = s->groups;
  const int threads = pool.num_threads();
  while (static_cast<int>(s->thread_pools.size()) < threads) {
    s->thread_pools.push_back(std::make_unique<ThreadPool>(1));
    s->thread_scratch.push_back(std::make_unique<MoeScratch>());
    s->thread_ws.push_back(std::make_unique<kernels::Workspace>());
  }
  BF16* pair_ys = GrowTo(s->pair_ys, pairs * D);
  std::vector<int32_t>& active = s->active_experts;
  active.clear();
  for (int64_t e = 0; e < static_cast<int64_t>(groups.start.size()) - 1; ++e) {
    if (groups.size(e) > 0) active.push_back(static_cast<int32_t>(e));
  }
  // Dynamic: each thread takes the next expert, those with the most rows first (an expert's
  // time grows with its rows), so the threads end together.
  std::stable_sort(active.begin(), active.end(),
                   [&](int32_t a, int32_t b) { return groups.size(a) > groups.size(b); });
  pool.ParallelForClaimed(static_cast<int64_t>(active.size()), [&](int64_t i, int t) {
    MoeScratch& ts = *s->thread_scratch[t];
    const int64_t e = active[i];
    const int64_t* rows = groups.rows.data() + groups.start[e];
    const int64_t m = groups.size(e);
    BF16* xs = GrowTo(ts.xs, m * D);
    for (int64_t j = 0; j < m; ++j) std::copy_n(x + rows[j] * D, D, xs + j * D);
    Expert(*s->thread_pools[t], w.experts[e], xs, m, groups.weights.data() + groups.start[e],
           limit, pair_ys + groups.start[e] * D, &ts, s->thread_ws[t].get());
  });
}

}  // namespace

void Expert(ThreadPool& pool, const ExpertWeights& e, const BF16* x, int64_t rows,
            const float* weights, float limit, BF16* y, MoeScratch* s, kernels::Workspace* ws) {
  const int64_t I = e.w1.out;
  BF16* a = GrowTo(s->a, rows * I);
  BF16* b = GrowTo(s->b, rows * I);
  BF16* h = GrowTo(s->h, rows * I);
  kernels::Linear(pool, e.w1, x, rows, a, ws);
  kernels::Linear(pool, e.w3, x, rows, b, ws);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < I; ++i) {
      const float av = std::min(Bf16ToF32(a[r * I + i]), limit);
      const float bv = std::clamp(Bf16ToF32(b[r * I + i]), -limit, limit);
      const float silu = av / (1.0f + std::exp(-av));
      h[r * I + i] = F32ToBf16(weights[r] * (silu * bv));
    }
  }
  kernels::Linear(pool, e.w2, h, rows, y, ws);
}

void RouteToken(const checkpoint::ModelConfig& c, const LayerWeights& w, const float* logits,
                int32_t token, Route* r, RouteScratch* scratch) {
  const int64_t E = c.n_routed_experts, k = c.num_experts_per_tok;
  std::vector<float>& score = scratch->score;
  score.resize(static_cast<size_t>(E));
  for (int64_t e = 0; e < E; ++e) score[e] = std::sqrt(Softplus(logits[e]));
  if (w.tid2eid != nullptr) {
    r->experts.assign(w.tid2eid + token * k, w.tid2eid + (token + 1) * k);
  } else {
    std::vector<int32_t>& order = scratch->order;
    order.resize(static_cast<size_t>(E));
    std::iota(order.begin(), order.end(), 0);
    // The k best biased scores, ties to the lower id (what a stable descending sort gives);
    // partial_sort works in place, where stable_sort would allocate a buffer per token.
    auto biased = [&](int32_t e) { return score[e] + w.gate_bias[e]; };
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
      return biased(a) > biased(b) || (biased(a) == biased(b) && a < b);
    });
    r->experts.assign(order.begin(), order.begin() + k);
  }
  float sum = 0.0f;
  for (int32_t e : r->experts) sum += score[e];
  r->weights.clear();
  for (int32_t e : r->experts) {
    r->weights.push_back(score[e] / sum * static_cast<float>(c.routed_scaling_factor));
  }
}

Route RouteToken(const checkpoint::ModelConfig& c, const LayerWeights& w, const float* logits,
                 int32_t token) {
  Route r;
  RouteScratch scratch;
  RouteToken(c, w, logits, token, &r, &scratch);
  return r;
}

void RouteRows(ThreadPool& pool, const checkpoint::ModelConfig& c, const LayerWeights& w,
               const int32_t* tokens, const BF16* x, int64_t n, MoeScratch* s,
               kernels::Workspace* ws) {
  const int64_t E = c.n_routed_experts, k = c.num_experts_per_tok;
  float* logits = GrowTo(s->logits, n * E);
  if (n > 0) kernels::LinearBf16InF32(pool, w.gate, x, n, logits, ws);
  s->expert_of.resize(static_cast<size_t>(n * k));  // [n, k]
  s->weight_of.resize(static_cast<size_t>(n * k));  // [n, k]
  for (int64_t t = 0; t < n; ++t) {
    RouteToken(c, w, logits + t * E, tokens[t], &s->route, &s->route_scratch);
    std::copy(s->route.experts.begin(), s->route.experts.end(), s->expert_of.begin() + t * k);
    std::copy(s->route.weights.begin(), s->route.weights.end(), s->weight_of.begin() + t * k);
  }
}

const BF16* SharedExpert(ThreadPool& pool, const checkpoint::ModelConfig& c, const LayerWeights& w,
                         const BF16* x, int64_t n, MoeScratch* s, kernels::Workspace* ws) {
  if (!w.has_shared || n == 0) return nullptr;
  // Weight 1, clamped like the routed experts (§10.3 revision note).
  float* ones = GrowTo(s->ones, n);
  std::fill_n(ones, n, 1.0f);
  BF16* ys = GrowTo(s->ys, n * c.hidden_size);
  Expert(pool, w.shared, x, n, ones, static_cast<float>(c.swiglu_limit), ys, s, ws);
  return ys;
}

void AddSharedAndStore(ThreadPool& pool, const checkpoint::ModelConfig& c, const LayerWeights& w,
                       const BF16* x, int64_t n, float* acc, BF16* out, MoeScratch* s,
                       kernels::Workspace* ws) {
  models::AddAndStore(n, c.hidden_size, acc, SharedExpert(pool, c, w, x, n, s, ws), out);
}

void MoeForward(ThreadPool& pool, const checkpoint::ModelConfig& c, const LayerWeights& w,
                const int32_t* tokens, const BF16* x, int64_t n, BF16* out, MoeScratch* s,
                kernels::Workspace* ws) {
  const int64_t D = c.hidden_size, E = c.n_routed_experts, k = c.num_experts_per_tok;
  // Route every row, then group the rows by expert (models/common/expert_groups.h).
  RouteRows(pool, c, w, tokens, x, n, s, ws);
  models::ExpertGroups& groups = s->groups;
  groups.Build(s->expert_of, s->weight_of, k, E);
  // FP32 sums per row, experts added in ascending id (a fixed per-token order), shared last.
  float* acc = GrowTo(s->acc, n * D);
  std::fill_n(acc, n * D, 0.0f);
  const float limit = static_cast<float>(c.swiglu_limit);
  int64_t active = 0;
  for (int64_t e = 0; e < E; ++e) active += groups.size(e) > 0 ? 1 : 0;
  if (active >= kExpertsPerThread * pool.num_threads()) {
    RoutedExpertsSpread(pool, w, x, n * k, D, limit, s);
    for (int64_t e = 0; e < E; ++e) {
      const int64_t* rows = groups.rows.data() + groups.start[e];
      const BF16* ys = s->pair_ys.data() + groups.start[e] * D;
      for (int64_t i = 0; i < groups.size(e); ++i) {
        for (int64_t d = 0; d < D; ++d) acc[rows[i] * D + d] += Bf16ToF32(ys[i * D + d]);
      }
    }
    AddSharedAndStore(pool, c, w, x, n, acc, out, s, ws);
    return;
  }
  for (int64_t e = 0; e < E; ++e) {
    const int64_t* rows = groups.rows.data() + groups.start[e];
    const int64_t m = groups.size(e);
    if (m == 0) continue;
    BF16* xs = GrowTo(s->xs, m * D);
    BF16* ys = GrowTo(s->ys, m * D);
    for (int64_t i = 0; i < m; ++i) std::copy_n(x + rows[i] * D, D, xs + i * D);
    Expert(pool, w.experts[e], xs, m, groups.weights.data() + groups.start[e], limit, ys, s, ws);
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t d = 0; d < D; ++d) acc[rows[i] * D + d] += Bf16ToF32(ys[i * D + d]);
    }
  }
  AddSharedAndStore(pool, c, w, x, n, acc, out, s, ws);
}

}  // namespace dsv4::v4
