#include "plan/all_to_all.h"

#include <algorithm>

namespace dsv4::plan {

double RankHitProbability(const checkpoint::ModelConfig& c, int64_t ep) {
  if (ep <= 1 || c.n_routed_experts <= 0) return 0;
  const double e = static_cast<double>(c.n_routed_experts);
  const double off = e - e / static_cast<double>(ep);  // experts not on that rank
  double miss = 1.0;  // all k picks avoid the rank: prod_i (off - i) / (E - i)
  for (int64_t i = 0; i < c.num_experts_per_tok; ++i) {
    const double d = static_cast<double>(i);
    miss *= std::max(off - d, 0.0) / (e - d);
  }
  return 1.0 - miss;
}

AllToAll ComputeAllToAll(const AllToAllInputs& in, int64_t batch) {
  AllToAll a;
  const checkpoint::ModelConfig& c = *in.model;
  const ParallelLayout& l = in.layout;
  if (c.n_routed_experts <= 0) return a;
  a.moe_layers = std::max<int64_t>(c.num_hidden_layers - c.first_k_dense_replace, 0);
  a.collectives_per_step = l.ep > 1 ? a.moe_layers * in.collectives_per_layer : 0;
  if (l.ep <= 1) return a;
  const double ep = static_cast<double>(l.ep);
  const double d = static_cast<double>(c.hidden_size);
  const double row = in.dispatch == DispatchDtype::kFp8 ? d + 4.0 * (d / 128.0) : 2.0 * d;
  a.dest_ranks_per_token = (ep - 1.0) * RankHitProbability(c, l.ep);
  a.remote_experts_per_token = static_cast<double>(c.num_experts_per_tok) * (ep - 1.0) / ep;
  a.dispatch_bytes_per_token_layer =
      a.dest_ranks_per_token * row +
      a.remote_experts_per_token * static_cast<double>(in.record_bytes);
  a.combine_bytes_per_token_layer = a.remote_experts_per_token * 2.0 * d;
  a.bytes_per_token = static_cast<double>(a.moe_layers) *
                      (a.dispatch_bytes_per_token_layer + a.combine_bytes_per_token_layer);
  a.tokens_per_gpu = static_cast<double>(batch) / static_cast<double>(l.tp);
  a.bytes_per_step = a.tokens_per_gpu * a.bytes_per_token;
  // Peers are spread evenly; those outside this GPU's scale-up domain go over the NIC.
  const int64_t gpus = l.gpus();
  const int64_t domain = in.domain_gpus > 0 ? std::min(in.domain_gpus, gpus) : gpus;
  a.offdomain_fraction =
      gpus > 1 ? static_cast<double>(gpus - domain) / static_cast<double>(gpus - 1) : 0.0;
  const double on = a.bytes_per_step * (1.0 - a.offdomain_fraction);
  const double off = a.bytes_per_step * a.offdomain_fraction;
  const bool on_known = on == 0 || in.link_bytes_per_s > 0;
  const bool off_known = off == 0 || in.nic_bytes_per_s > 0;
  if (on_known && off_known) {
    a.step_seconds = std::max(on > 0 ? on / in.link_bytes_per_s : 0.0,
                              off > 0 ? off / in.nic_bytes_per_s : 0.0);
  }
  return a;
}

}  // namespace dsv4::plan
