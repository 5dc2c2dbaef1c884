#include "models/common/moe_combine.h"

#include <algorithm>

#include "core/check.h"
#include "core/grow.h"

namespace dsv4::models {

void AddAndStore(int64_t n, int64_t D, float* acc, const BF16* shared, BF16* out) {
  if (shared != nullptr) {
    for (int64_t i = 0; i < n * D; ++i) acc[i] += Bf16ToF32(shared[i]);
  }
  for (int64_t i = 0; i < n * D; ++i) out[i] = F32ToBf16(acc[i]);
}

void MoeAcrossRanks(dist::ExpertParallel& ep, const BF16* x, int64_t n, int64_t D, int64_t E,
                    int64_t k, std::span<const int32_t> expert_of,
                    std::span<const float> weight_of, RoutingWeightAt weight_at,
                    RoutedExpertFn routed, SharedExpertFn shared, BF16* out,
                    ParallelMoeScratch* s) {
  dist::ExpertExchange& ex = s->exchange;
  ex.Dispatch(ep, x, n, D, expert_of, weight_of, k);

  // This rank's experts on the rows it received, each expert once on all of its pairs.
  const int64_t pairs = ex.num_pairs();
  ExpertGroups& groups = s->groups;
  groups.Build(ex.pair_experts(), ex.pair_weights(), 1, E);  // rows = pair indices
  BF16* pair_out = GrowTo(s->pair_out, pairs * D);
  for (int64_t e = 0; e < E; ++e) {
    const int64_t m = groups.size(e);
    if (m == 0) continue;
    DSV4_CHECK(ep.holds(e));
    const int64_t* pair = groups.rows.data() + groups.start[e];
    BF16* xs = GrowTo(s->xs, m * D);
    BF16* ys = GrowTo(s->ys, m * D);
    for (int64_t i = 0; i < m; ++i) std::copy_n(ex.received_row(ex.pair_row(pair[i])), D, xs + i * D);
    routed(e, xs, m, groups.weights.data() + groups.start[e], ys);
    for (int64_t i = 0; i < m; ++i) std::copy_n(ys + i * D, D, pair_out + pair[i] * D);
  }
  // While the other ranks finish their experts and the outputs travel, this rank runs its
  // shared expert (its rows only; pair_out stays untouched).
  ex.StartCombine(ep, pair_out);
  const BF16* shared_out = shared();
  ex.FinishCombine(ep);

  // The canonical sum per row: FP32 from zero, experts in ascending id (what MoeForward
  // gives: it visits experts ascending and adds to each of their rows), shared expert last.
  float* acc = GrowTo(s->acc, n * D);
  std::fill_n(acc, n * D, 0.0f);
  int32_t* order = GrowTo(s->order, k);
  for (int64_t t = 0; t < n; ++t) {
    const int32_t* chosen = expert_of.data() + t * k;
    for (int64_t j = 0; j < k; ++j) {  // insertion sort: stable, k is small, no allocation
      int64_t i = j;
      for (; i > 0 && chosen[order[i - 1]] > chosen[j]; --i) order[i] = order[i - 1];
      order[i] = static_cast<int32_t>(j);
    }
    float* a = acc + t * D;
    for (int64_t j = 0; j < k; ++j) {
      const BF16* y = ex.result(t, order[j]);
      if (weight_at == RoutingWeightAt::kExpert) {
        for (int64_t d = 0; d < D; ++d) a[d] += Bf16ToF32(y[d]);
      } else {
        const float g = weight_of[static_cast<size_t>(t * k + order[j])];
        for (int64_t d = 0; d < D; ++d) a[d] += Bf16ToF32(y[d]) * g;
      }
    }
  }
  AddAndStore(n, D, acc, shared_out, out);
}

}  // namespace dsv4::models
