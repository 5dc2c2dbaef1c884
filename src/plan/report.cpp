#include "plan/report.h"

#include "plan/args.h"
#include "plan/units.h"

namespace dsv4::plan {
namespace {

using nlohmann::json;

json DecodeJson(const DecodeFloor& d) {
  return {{"batch_per_gpu", d.batch},
          {"weight_read_bytes", d.weight_read_bytes},
          {"kv_read_bytes", d.kv_read_bytes},
          {"step_ms", d.step_seconds * 1e3},
          {"tokens_per_second_per_gpu", d.tokens_per_second_per_gpu}};
}

json AllToAllJson(const AllToAll& a) {
  return {{"moe_layers", a.moe_layers},
          {"dest_ranks_per_token", a.dest_ranks_per_token},
          {"remote_experts_per_token", a.remote_experts_per_token},
          {"dispatch_bytes_per_token_layer", a.dispatch_bytes_per_token_layer},
          {"combine_bytes_per_token_layer", a.combine_bytes_per_token_layer},
          {"bytes_per_token", a.bytes_per_token},
          {"tokens_per_gpu", a.tokens_per_gpu},
          {"bytes_per_step_per_gpu", a.bytes_per_step},
          {"offdomain_fraction", a.offdomain_fraction},
          {"collectives_per_step", a.collectives_per_step},
          {"transfer_ms", a.step_seconds * 1e3}};
}

void ConcurrencyJson(const Concurrency& n, json& j) {
  j["requests_per_gpu"] = n.per_gpu;
  j["requests_per_dp_rank"] = n.per_rank;
  j["requests_per_group"] = n.per_group;
  j["requests_per_rack"] = n.per_rack ? json(*n.per_rack) : json(nullptr);
}

// RFC 4180 quoting: only fields with a comma, quote or newline are quoted.
std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string Num(double v, int digits) { return FixedDigits(v, digits); }

}  // namespace

std::vector<PlanCase> PlanAll(const std::vector<PlanOptions>& options) {
  std::vector<PlanCase> cases;
  for (const PlanOptions& o : options) {
    Result<CapacityPlan> r = PlanCapacity(o);
    PlanCase c{o, std::nullopt, r.status()};
    if (r.ok()) c.plan = std::move(r).value();
    cases.push_back(std::move(c));
  }
  return cases;
}

std::string KvFormatLabel(const PlanOptions& o) {
  const checkpoint::ModelConfig& c = o.model;
  const kv::KvFormats& f = o.kv_formats;
  const std::string idx =
      f.indexer == kv::IndexerFormat::kNone
          ? "no indexer cache"
          : std::string(IndexerFormatName(f.indexer)) + " indexer keys (" +
                std::to_string(kv::IndexerKeyBytes(c.index_head_dim, f.indexer)) + " B)";
  if (c.arch == checkpoint::Arch::kV32) {
    // "584" / "576" name a size, not a dtype: print them once.
    const std::string_view name = MlaFormatName(f.mla);
    const bool sized = name == "584" || name == "576";
    return "MLA " + (sized ? std::string() : std::string(name) + " ") + "records (" +
           std::to_string(kv::MlaRecordBytes(c, f.mla)) + " B) + " + idx;
  }
  return std::string(EntryFormatName(f.entry)) + " entries (" +
         std::to_string(kv::EntryBytes(c, f.entry)) + " B) + " + idx +
         (o.include_compressor_state ? "" : ", no compressor state");
}

json PlanJson(const CapacityPlan& p) {
  const PlanOptions& o = p.options;
  json j;
  j["model"] = o.model_label;
  j["architecture"] = checkpoint::ArchName(o.model.arch);
  j["hardware"] = {{"name", o.gpu.name},
                   {"label", o.gpu.label},
                   {"hbm_gb", o.gpu.hbm_bytes / 1e9},
                   {"hbm_nominal_gb", o.gpu.hbm_nominal_bytes / 1e9},
                   {"bw_tbs", o.gpu.bw_bytes_per_s / 1e12},
                   {"link_gbs", o.gpu.link_bytes_per_s / 1e9},
                   {"nic_gbs", o.gpu.nic_bytes_per_s / 1e9},
                   {"rack_gpus", p.rack_gpus},
                   {"groups_per_rack", p.groups_per_rack}};
  j["layout"] = {{"name", o.layout.Name()}, {"tp", o.layout.tp},
                 {"dp", o.layout.dp},       {"ep", o.layout.ep},
                 {"gpus", o.layout.gpus()}, {"redundant_experts", o.layout.redundant_experts}};
  j["expert_dtype"] = ExpertDtypeName(o.expert_dtype);
  j["a2a_dispatch"] = DispatchDtypeName(o.a2a_dispatch);
  j["kv_formats"] = {{"label", KvFormatLabel(o)},
                     {"entry", EntryFormatName(o.kv_formats.entry)},
                     {"indexer", IndexerFormatName(o.kv_formats.indexer)},
                     {"mla", MlaFormatName(o.kv_formats.mla)},
                     {"compressor_state", o.include_compressor_state}};
  j["memory"] = {{"util", o.memory.util},
                 {"workspace_gb", p.workspace_bytes / 1e9},
                 {"usable_gb", p.usable_bytes / 1e9},
                 {"kv_budget_gb", p.kv_budget_bytes / 1e9},
                 {"fixed_budget", p.fixed_budget}};
  const ParamBreakdown& q = p.params;
  j["parameters"] = {{"routed", q.routed},       {"routed_mtp", q.routed_mtp},
                     {"embedding", q.embedding}, {"head", q.head},
                     {"other", q.other},         {"other_mtp", q.other_mtp},
                     {"mtp_tied", q.mtp_tied},   {"total", q.total()}};
  j["weights_per_gpu"] = {{"total_gb", p.weights.total() / 1e9},
                          {"routed_experts_gb", p.weights.routed_experts / 1e9},
                          {"replicated_gb", p.weights.replicated() / 1e9},
                          {"experts_per_gpu", p.weights.experts_per_gpu},
                          {"include_mtp", o.include_mtp_weights},
                          {"dense_basis", DenseBasisName(o.dense_basis)}};
  json rates = json::array();
  for (const KvRate& r : p.kv_rates) {
    rates.push_back({{"name", r.name},
                     {"layers", r.layers},
                     {"bytes_per_entry", r.bytes_per_entry},
                     {"bytes_per_token", r.bytes_per_token},
                     {"fixed_bytes", r.fixed_bytes}});
  }
  j["kv"] = {{"bytes_per_token", p.kv_bytes_per_token},
             {"fixed_bytes_per_request", p.kv_fixed_bytes},
             {"token_capacity_per_gpu", p.kv_token_capacity},
             {"components", rates}};
  json lengths = json::array();
  for (const LengthPlan& l : p.lengths) {
    json e = {{"tokens", l.tokens},
              {"kv_bytes_per_request", l.kv_bytes},
              {"kv_gb_per_request", static_cast<double>(l.kv_bytes) / 1e9},
              {"beyond_model_context", l.beyond_model_context},
              {"binding", l.binding},
              {"decode", DecodeJson(l.decode)},
              {"all_to_all", AllToAllJson(l.a2a)}};
    for (const kv::KvComponent& c : l.footprint.components) e["components"][c.name] = c.bytes();
    ConcurrencyJson(l.n, e);
    lengths.push_back(e);
  }
  j["lengths"] = lengths;
  if (p.mix) {
    json shares = json::array();
    for (const LengthShare& s : p.mix->shares) {
      shares.push_back({{"tokens", s.tokens}, {"share", s.weight}});
    }
    j["mix"] = {{"shares", shares},
                {"mean_kv_bytes_per_request", p.mix->mean_kv_bytes},
                {"binding", p.mix->binding},
                {"decode", DecodeJson(p.mix->decode)},
                {"all_to_all", AllToAllJson(p.mix->a2a)}};
    ConcurrencyJson(p.mix->n, j["mix"]);
  }
  json maxc = json::array();
  for (const MaxContext& m : p.max_context) {
    maxc.push_back({{"concurrency", m.concurrency},
                    {"max_tokens", m.max_tokens},
                    {"memory_tokens", m.memory_tokens},
                    {"binding", m.binding}});
  }
  j["max_context"] = maxc;
  j["summary"] = p.summary;
  j["notes"] = p.notes;
  return j;
}

json PlansJson(const std::vector<PlanCase>& cases) {
  json plans = json::array(), errors = json::array();
  for (const PlanCase& c : cases) {
    if (c.plan) {
      plans.push_back(PlanJson(*c.plan));
    } else {
      errors.push_back({{"model", c.options.model_label},
                        {"hardware", c.options.gpu.label},
                        {"layout", c.options.layout.Name()},
                        {"error", c.status.message()}});
    }
  }
  return {{"plans", plans}, {"errors", errors}};
}

std::string PlansCsv(const std::vector<PlanCase>& cases) {
  std::string out =
      "model,hardware,hbm_gb,layout,gpus_per_group,expert_dtype,kv_formats,tokens,"
      "kv_bytes_per_request,weights_gb_per_gpu,kv_budget_gb_per_gpu,requests_per_gpu,"
      "requests_per_group,requests_per_rack,decode_step_ms,a2a_bytes_per_step_per_gpu,"
      "a2a_transfer_ms,binding\n";
  for (const PlanCase& c : cases) {
    const PlanOptions& o = c.options;
    const std::string head =
        CsvField(o.model_label) + "," + CsvField(o.gpu.name) + "," + Num(o.gpu.hbm_bytes / 1e9, 1) +
        "," + o.layout.Name() + "," + std::to_string(o.layout.gpus()) + "," +
        std::string(ExpertDtypeName(o.expert_dtype)) + "," + CsvField(KvFormatLabel(o)) + ",";
    if (!c.plan) {
      out += head + ",,,,,,,,,," + CsvField(c.status.message()) + "\n";
      continue;
    }
    const CapacityPlan& p = *c.plan;
    const std::string budget =
        Num(p.weights.total() / 1e9, 3) + "," + Num(p.kv_budget_bytes / 1e9, 3) + ",";
    auto counts = [](const Concurrency& n) {
      return Num(n.per_gpu, n.per_gpu == static_cast<double>(n.per_rank) ? 0 : 3) + "," +
             std::to_string(n.per_group) + "," +
             (n.per_rack ? std::to_string(*n.per_rack) : std::string()) + ",";
    };
    auto a2a = [](const AllToAll& a) {
      return Num(a.bytes_per_step, 0) + "," + Num(a.step_seconds * 1e3, 3) + ",";
    };
    for (const LengthPlan& l : p.lengths) {
      out += head + std::to_string(l.tokens) + "," + std::to_string(l.kv_bytes) + "," + budget +
             counts(l.n) + Num(l.decode.step_seconds * 1e3, 3) + "," + a2a(l.a2a) +
             CsvField(l.binding) + "\n";
    }
    if (p.mix) {
      out += head + "mix," + Num(p.mix->mean_kv_bytes, 0) + "," + budget + counts(p.mix->n) +
             Num(p.mix->decode.step_seconds * 1e3, 3) + "," + a2a(p.mix->a2a) +
             CsvField(p.mix->binding) + "\n";
    }
  }
  return out;
}

}  // namespace dsv4::plan
