#include "models/v4/moe_parallel.h"

#include <algorithm>

#include "core/check.h"
#include "core/grow.h"

namespace dsv4::v4 {

void MoeForwardParallel(ThreadPool& pool, const checkpoint::ModelConfig& c, const LayerWeights& w,
                        dist::ExpertParallel& ep, const int32_t* tokens, const BF16* x, int64_t n,
                        BF16* out, MoeScratch* s, kernels::Workspace* ws) {
  const int64_t D = c.hidden_size, E = c.n_routed_experts, k = c.num_experts_per_tok;
  RouteRows(pool, c, w, tokens, x, n, s, ws);
  dist::ExpertExchange& ex = s->exchange;
  ex.Dispatch(ep, x, n, D, s->expert_of, s->weight_of, k);

  // This rank's experts on the rows it received, each expert once on all of its pairs.
  const int64_t pairs = ex.num_pairs();
  models::ExpertGroups& groups = s->groups;
  groups.Build(ex.pair_experts(), ex.pair_weights(), 1, E);  // rows = pair indices
  BF16* pair_out = GrowTo(s->pair_out, pairs * D);
  const float limit = static_cast<float>(c.swiglu_limit);
  for (int64_t e = 0; e < E; ++e) {
    const int64_t m = groups.size(e);
    if (m == 0) continue;
    DSV4_CHECK(ep.holds(e));
    const int64_t* pair = groups.rows.data() + groups.start[e];
    BF16* xs = GrowTo(s->xs, m * D);
    BF16* ys = GrowTo(s->ys, m * D);
    for (int64_t i = 0; i < m; ++i) std::copy_n(ex.received_row(ex.pair_row(pair[i])), D, xs + i * D);
    Expert(pool, w.experts[e], xs, m, groups.weights.data() + groups.start[e], limit, ys, s, ws);
    for (int64_t i = 0; i < m; ++i) std::copy_n(ys + i * D, D, pair_out + pair[i] * D);
  }
  // While the other ranks finish their experts and the outputs travel, this rank runs its
  // shared expert (its rows only; s->ys is free again, pair_out stays untouched).
  ex.StartCombine(ep, pair_out);
  const BF16* shared = SharedExpert(pool, c, w, x, n, s, ws);
  ex.FinishCombine(ep);

  // The canonical sum per row: FP32 from zero, experts in ascending id (MoeForward's order:
  // it visits experts ascending and adds to each of their rows), shared expert last.
  float* acc = GrowTo(s->acc, n * D);
  std::fill_n(acc, n * D, 0.0f);
  int32_t* order = GrowTo(s->route_scratch.order, k);
  for (int64_t t = 0; t < n; ++t) {
    const int32_t* chosen = s->expert_of.data() + t * k;
    for (int64_t j = 0; j < k; ++j) {  // insertion sort: stable, k is small, no allocation
      int64_t i = j;
      for (; i > 0 && chosen[order[i - 1]] > chosen[j]; --i) order[i] = order[i - 1];
      order[i] = static_cast<int32_t>(j);
    }
    float* a = acc + t * D;
    for (int64_t j = 0; j < k; ++j) {
      const BF16* y = ex.result(t, order[j]);
      for (int64_t d = 0; d < D; ++d) a[d] += Bf16ToF32(y[d]);
    }
  }
  AddAndStore(n, D, acc, shared, out);
}

}  // namespace dsv4::v4
