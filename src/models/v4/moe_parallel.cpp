#include "models/v4/moe_parallel.h"

namespace dsv4::v4 {

void MoeForwardParallel(ThreadPool& pool, const checkpoint::ModelConfig& c, const LayerWeights& w,
                        dist::ExpertParallel& ep, const int32_t* tokens, const BF16* x, int64_t n,
                        BF16* out, MoeScratch* s, kernels::Workspace* ws) {
  RouteRows(pool, c, w, tokens, x, n, s, ws);
  const float limit = static_cast<float>(c.swiglu_limit);
  // The routing weight multiplies inside the expert (before w2). The shared expert writes
  // s->ys, which the routed experts no longer use by then (they run on s->parallel's).
  models::MoeAcrossRanks(
      ep, x, n, c.hidden_size, c.n_routed_experts, c.num_experts_per_tok, s->expert_of,
      s->weight_of, models::RoutingWeightAt::kExpert,
      [&](int64_t e, const BF16* xs, int64_t m, const float* weights, BF16* ys) {
        Expert(pool, w.experts[e], xs, m, weights, limit, ys, s, ws);
      },
      [&] { return SharedExpert(pool, c, w, x, n, s, ws); }, out, &s->parallel);
}

}  // namespace dsv4::v4
