#include "bench/decode_json.h"

#include <string>

namespace dsv4::bench {
namespace {

nlohmann::json GroupJson(const DecodeGroupCost& g) {
  return {{"type", g.name},
          {"layers", g.full_count},
          {"ran", g.ran_layers},
          {"ms_per_layer", g.ms_per_layer},
          {"kv_bytes_per_layer", g.kv_bytes_per_layer},
          {"weight_bytes_per_layer", g.weight_bytes_per_layer},
          {"bound_ms_per_layer", g.bound_ms_per_layer()},
          {"bound_ms_per_layer_parts",
           {{"weights", g.bound_weights_ms},
            {"indexer", g.bound_indexer_ms},
            {"attention", g.bound_attention_ms}}}};
}

nlohmann::json PointJson(const DecodePoint& p, const DecodePoint* base, const Bandwidth& bw) {
  nlohmann::json groups = nlohmann::json::array();
  for (const DecodeGroupCost& g : p.groups) groups.push_back(GroupJson(g));
  nlohmann::json pj = {{"depth", p.depth},
                       {"ms_per_token_ran", p.ran_ms()},
                       {"ms_per_token", p.full_ms()},
                       {"bound_ms_per_token", p.bound_ms()},
                       {"measured_over_bound", p.measured_over_bound()},
                       {"kv_bytes_per_token", p.kv_bytes()},
                       {"weight_bytes_per_token", p.weight_bytes()},
                       {"gb_per_s", p.gb_per_s()},
                       {"fraction_of_bandwidth", p.gb_per_s() / bw.copy_gb_per_s},
                       {"fill_seconds", p.fill_seconds},
                       {"layer_types", groups}};
  if (base != nullptr) {
    pj["vs_v32_time"] = p.full_ms() / base->full_ms();
    pj["vs_v32_kv_bytes"] = double(p.kv_bytes()) / double(base->kv_bytes());
  }
  return pj;
}

}  // namespace

nlohmann::json DecodeJson(const std::vector<DecodeReport>& reports, const DecodeRunInfo& run) {
  nlohmann::json models = nlohmann::json::array();
  for (const DecodeReport& r : reports) {
    nlohmann::json points = nlohmann::json::array();
    for (size_t i = 0; i < r.points.size(); ++i) {
      const DecodePoint* base =
          run.baseline >= 0 ? &reports[static_cast<size_t>(run.baseline)].points[i] : nullptr;
      points.push_back(PointJson(r.points[i], base, run.bandwidth));
    }
    models.push_back({{"model", r.label},
                      {"architecture", std::string(checkpoint::ArchName(r.config.arch))},
                      {"layers", r.config.num_hidden_layers},
                      {"ran", r.subset.Describe(r.config.num_hidden_layers)},
                      {"weight_bytes_ran", r.weight_bytes_ran},
                      {"points", points}});
  }
  const MachineLimits& m = run.limits;
  return {{"what", "decode cost per token at depth, attention sublayers only"},
          {"runs", kDecodeRuns},
          {"not_run", kDecodeNotRun},
          {"threads", run.threads},
          {"timed_tokens_per_depth", run.iters},
          {"isa", std::string(kernels::IsaName(run.isa))},
          {"bandwidth",
           {{"buffer_bytes", run.bandwidth.buffer_bytes},
            {"copy_gb_per_s", run.bandwidth.copy_gb_per_s},
            {"read_gb_per_s", run.bandwidth.read_gb_per_s}}},
          {"roofline",
           {{"bound",
             "per layer: attention weights / read bandwidth + for the indexer scan and the "
             "gathered attention each max(bytes / read bandwidth, 2 x multiply-adds / peak)"},
            {"read_gb_per_s", m.read_bytes_per_s / 1e9},
            {"peak", std::string(PeakName(run.peak))},
            {"peak_gflop_per_s", PeakFlops(m, run.peak) / 1e9},
            {"fma_gflop_per_s", m.fma_flops / 1e9},
            {"muladd_gflop_per_s", m.muladd_flops / 1e9},
            {"bf16_gflop_per_s", m.bf16_flops / 1e9},
            {"fma_l1_gflop_per_s", m.fma_l1_flops / 1e9}}},
          {"models", models}};
}

}  // namespace dsv4::bench
