// dsv4 plan: capacity planner. How many concurrent requests of a given context length a GPU,
// a serving group and a rack hold for a model, KV format, weights dtype, hardware and
// parallel layout (docs/capacity.md). The arithmetic lives in src/plan; this file parses
// flags, prints tables and writes the SVG.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "checkpoint/config.h"
#include "model_arg.h"
#include "plan/args.h"
#include "plan/report.h"
#include "plan/svg.h"
#include "plan/units.h"
#include "table.h"

namespace dsv4::cli {
namespace {

using plan::CapacityPlan;
using plan::Commas;
using plan::FixedDigits;
using plan::PlanCase;

struct PlanCliOptions {
  std::vector<std::string> models, hardware, contexts;
  std::vector<int64_t> concurrency;
  bool nominal = false, json = false, csv = false, detail = false, list_hardware = false;
  bool no_compressor_state = false, no_mtp_weights = false;
  double hbm = 0, bw = 0, util = 0, workspace = 0, kv_budget = 0, bw_efficiency = 1.0;
  double link_bw = 0, nic_bw = 0;
  std::string layout, expert_dtype, dense_weights, entry, indexer, mla, mix, svg, a2a_dispatch;
  int64_t tp = 0, dp = 0, ep = 0, redundant = 0, rack_gpus = 0;
  // The options CLI11 filled, to tell "given" from "default".
  CLI::App* cmd = nullptr;
  bool Given(const char* name) const { return cmd->count(name) > 0; }
};

plan::PlanRequest ToRequest(const PlanCliOptions& o) {
  plan::PlanRequest r;
  r.models = o.models;
  r.hardware = o.hardware;
  r.nominal = o.nominal;
  if (o.Given("--hbm")) r.hbm_gb = o.hbm;
  if (o.Given("--bw")) r.bw_tbs = o.bw;
  if (o.Given("--layout")) r.layout = o.layout;
  if (o.Given("--tp")) r.tp = o.tp;
  if (o.Given("--dp")) r.dp = o.dp;
  if (o.Given("--ep")) r.ep = o.ep;
  r.redundant_experts = o.redundant;
  if (o.Given("--expert-dtype")) r.expert_dtype = o.expert_dtype;
  if (o.Given("--dense-weights")) r.dense_weights = o.dense_weights;
  if (o.Given("--entry")) r.entry = o.entry;
  if (o.Given("--indexer")) r.indexer = o.indexer;
  if (o.Given("--mla")) r.mla = o.mla;
  r.no_compressor_state = o.no_compressor_state;
  r.no_mtp_weights = o.no_mtp_weights;
  if (o.Given("--util")) r.util = o.util;
  if (o.Given("--workspace")) r.workspace_gb = o.workspace;
  if (o.Given("--kv-budget")) r.kv_budget_gb = o.kv_budget;
  r.contexts = o.contexts;
  if (o.Given("--mix")) r.mix = o.mix;
  r.concurrency = o.concurrency;
  r.bw_efficiency = o.bw_efficiency;
  r.rack_gpus = o.rack_gpus;
  if (o.Given("--link-bw")) r.link_gbs = o.link_bw;
  if (o.Given("--nic-bw")) r.nic_gbs = o.nic_bw;
  if (o.Given("--a2a-dispatch")) r.a2a_dispatch = o.a2a_dispatch;
  return r;
}

std::string Gb(double bytes) { return FixedDigits(bytes / 1e9, 2); }

// "NVL72 rack" for the preset's own domain, "72-GPU rack" when --rack-gpus overrides it.
std::string RackName(const CapacityPlan& p) {
  return p.rack_gpus == p.options.gpu.domain_gpus ? p.options.gpu.domain_name
                                                  : std::to_string(p.rack_gpus) + "-GPU rack";
}

// 5031.4375 -> "5,031.44".
std::string Rate(double v) {
  const int64_t cents = std::llround(v * 100);
  const std::string frac = std::to_string(100 + cents % 100).substr(1);  // two digits
  return Commas(cents / 100) + "." + frac;
}

std::string PerGpu(const plan::Concurrency& n) {
  const int64_t whole = static_cast<int64_t>(n.per_gpu);
  return n.per_gpu == static_cast<double>(whole) ? Commas(whole) : FixedDigits(n.per_gpu, 3);
}
std::string PerRack(const plan::Concurrency& n) { return n.per_rack ? Commas(*n.per_rack) : "-"; }
std::string StepMs(const plan::DecodeFloor& d) {
  return d.step_seconds > 0 ? FixedDigits(d.step_seconds * 1e3, 2) + " ms" : "-";
}
std::string TokPerS(const plan::DecodeFloor& d) {
  return d.step_seconds > 0 ? Commas(static_cast<int64_t>(d.tokens_per_second_per_gpu)) : "-";
}

std::string MemorySection(const CapacityPlan& p) {
  const plan::PlanOptions& o = p.options;
  Table t({"memory per GPU", "GB", "detail"});
  t.Row({"HBM", Gb(o.gpu.hbm_bytes), o.gpu.label});
  const std::string weights_detail =
      "routed experts " + Gb(p.weights.routed_experts) + " (" +
      FixedDigits(
          p.weights.experts_per_gpu,
          p.weights.experts_per_gpu == static_cast<int64_t>(p.weights.experts_per_gpu) ? 0 : 2) +
      " of " + std::to_string(o.model.n_routed_experts + o.layout.redundant_experts) +
      " experts per EP rank, " + std::string(plan::ExpertDtypeName(o.expert_dtype)) +
      "), replicated " + Gb(p.weights.replicated()) +
      (o.dense_basis == plan::DenseBasis::kStored ? " (as stored)" : " (all FP8, capacity.md §4)") +
      (o.include_mtp_weights ? ", MTP included" : ", MTP left out");
  if (p.fixed_budget) {
    t.Row({"weights", Gb(p.weights.total()), weights_detail + " (not subtracted)"});
    t.Row({"KV budget", Gb(p.kv_budget_bytes), "fixed by --kv-budget"});
  } else {
    t.Row({"usable", Gb(p.usable_bytes), "util " + FixedDigits(o.memory.util, 2) + " x HBM"});
    t.Row({"weights", Gb(p.weights.total()), weights_detail});
    t.Row({"workspace", Gb(p.workspace_bytes), "activations, comm buffers, graphs"});
    t.Row({"KV budget", Gb(p.kv_budget_bytes), "usable - weights - workspace"});
  }
  return t.Render();
}

std::string KvSection(const CapacityPlan& p) {
  Table t({"KV component", "layers", "bytes/entry", "bytes/token", "fixed/request"});
  for (const plan::KvRate& r : p.kv_rates) {
    t.Row({r.name, std::to_string(r.layers), Commas(r.bytes_per_entry),
           r.fixed_bytes ? "" : Rate(r.bytes_per_token),
           r.fixed_bytes ? plan::DecimalBytes(static_cast<double>(r.fixed_bytes)) : ""});
  }
  t.Row({"total", "", "", Rate(p.kv_bytes_per_token),
         plan::DecimalBytes(static_cast<double>(p.kv_fixed_bytes))});
  return t.Render() +
         "KV token capacity per GPU: " + Commas(static_cast<int64_t>(p.kv_token_capacity)) +
         " tokens at the asymptotic rate\n";
}

std::string LengthSection(const CapacityPlan& p) {
  const plan::PlanOptions& o = p.options;
  const std::string group = "req/group (" + std::to_string(o.layout.gpus()) + " GPUs)";
  const std::string rack = p.groups_per_rack > 0
                               ? "req/" + RackName(p) + " (" + std::to_string(p.groups_per_rack) +
                                     (p.groups_per_rack == 1 ? " group)" : " groups)")
                               : "req/rack";
  Table t({"tokens", "KV/request", "req/GPU", group, rack, "step floor", "tok/s/GPU"});
  for (const plan::LengthPlan& l : p.lengths) {
    t.Row({Commas(l.tokens), plan::DecimalBytes(static_cast<double>(l.kv_bytes)), PerGpu(l.n),
           Commas(l.n.per_group), PerRack(l.n), StepMs(l.decode), TokPerS(l.decode)});
  }
  std::string mix_shares;
  if (p.mix) {
    for (const plan::LengthShare& s : p.mix->shares) {
      mix_shares += " " + plan::TokensShort(s.tokens) + ":" + FixedDigits(s.weight, 2);
    }
    t.Row({"mix", plan::DecimalBytes(p.mix->mean_kv_bytes), PerGpu(p.mix->n),
           Commas(p.mix->n.per_group), PerRack(p.mix->n), StepMs(p.mix->decode),
           TokPerS(p.mix->decode)});
  }
  std::string out = t.Render();
  for (const plan::LengthPlan& l : p.lengths) {
    out += "  " + Commas(l.tokens) + ": " + l.binding + "\n";
  }
  if (p.mix) out += "  mix (" + mix_shares.substr(1) + "): " + p.mix->binding + "\n";
  return out;
}

// The expert all-to-all of the decode step of each length (ep > 1 only).
std::string AllToAllSection(const CapacityPlan& p) {
  const plan::PlanOptions& o = p.options;
  if (o.layout.ep <= 1) return "";
  Table t({"tokens", "rows/GPU", "dispatch/token/layer", "combine/token/layer", "per step/GPU",
           "off-domain", "transfer", "of step floor"});
  auto row = [&](const std::string& label, const plan::AllToAll& a, const plan::DecodeFloor& d) {
    const bool timed = a.step_seconds > 0;
    t.Row({label, FixedDigits(a.tokens_per_gpu, a.tokens_per_gpu == std::floor(a.tokens_per_gpu) ? 0 : 2),
           plan::DecimalBytes(a.dispatch_bytes_per_token_layer),
           plan::DecimalBytes(a.combine_bytes_per_token_layer), plan::DecimalBytes(a.bytes_per_step),
           FixedDigits(a.offdomain_fraction * 100, 1) + "%",
           timed ? FixedDigits(a.step_seconds * 1e3, 2) + " ms" : "-",
           timed && d.step_seconds > 0 ? FixedDigits(a.step_seconds / d.step_seconds, 2) + "x" : "-"});
  };
  for (const plan::LengthPlan& l : p.lengths) row(Commas(l.tokens), l.a2a, l.decode);
  if (p.mix) row("mix", p.mix->a2a, p.mix->decode);
  const plan::AllToAll& a = p.lengths.empty() ? p.mix->a2a : p.lengths.front().a2a;
  std::string out =
      "expert all-to-all per decode step (ep " + std::to_string(o.layout.ep) + ", " +
      std::string(plan::DispatchDtypeName(o.a2a_dispatch)) + " dispatch rows, BF16 outputs back, " +
      "uniform routing; each direction, sent = received):\n" + t.Render() + "  a token's row goes to " +
      FixedDigits(a.dest_ranks_per_token, 2) + " other ranks and " +
      FixedDigits(a.remote_experts_per_token, 2) + " expert outputs come back per MoE layer (" +
      std::to_string(a.moe_layers) + " layers, " + std::to_string(a.collectives_per_step) +
      " collectives per step); links " +
      (o.gpu.link_bytes_per_s > 0 ? FixedDigits(o.gpu.link_bytes_per_s / 1e9, 0) + " GB/s"
                                  : std::string("unknown (--link-bw)")) +
      " in the " + o.gpu.domain_name + ", " + FixedDigits(o.gpu.nic_bytes_per_s / 1e9, 0) +
      " GB/s across\n";
  return out;
}

std::string DetailReport(const CapacityPlan& p) {
  const plan::PlanOptions& o = p.options;
  std::string out = o.model_label + " on " + o.gpu.label + ", " + o.layout.Name() + " (tp " +
                    std::to_string(o.layout.tp) + " x dp " + std::to_string(o.layout.dp) + ", ep " +
                    std::to_string(o.layout.ep) + "), " +
                    std::string(plan::ExpertDtypeName(o.expert_dtype)) + " experts\n";
  out += "KV formats: " + plan::KvFormatLabel(o) + "\n\n";
  out += MemorySection(p) + "\n" + KvSection(p) + "\n" + LengthSection(p) + "\n";
  const std::string a2a = AllToAllSection(p);
  if (!a2a.empty()) out += a2a + "\n";
  Table m({"concurrency", "max tokens", "binding"});
  for (const plan::MaxContext& c : p.max_context) {
    m.Row({Commas(c.concurrency), Commas(c.max_tokens), c.binding});
  }
  out += m.Render() + "\n" + p.summary + "\n";
  for (const std::string& n : p.notes) out += "note: " + n + "\n";
  return out;
}

std::string SummaryReport(const std::vector<PlanCase>& cases) {
  Table t({"model", "hardware", "layout", "experts", "weights GB", "KV budget GB", "tokens",
           "KV/req GB", "req/GPU", "req/group", "req/rack", "step floor"});
  std::string errors;
  for (const PlanCase& c : cases) {
    const plan::PlanOptions& o = c.options;
    const std::vector<std::string> head = {o.model_label, o.gpu.label, o.layout.Name(),
                                           std::string(plan::ExpertDtypeName(o.expert_dtype))};
    auto row = [&](std::vector<std::string> rest) {
      std::vector<std::string> r = head;
      r.insert(r.end(), rest.begin(), rest.end());
      t.Row(r);
    };
    if (!c.plan) {
      row({"", "", "", "", "n/f", "n/f", "n/f", ""});
      errors += "not planned: " + c.status.message() + "\n";
      continue;
    }
    const CapacityPlan& p = *c.plan;
    for (const plan::LengthPlan& l : p.lengths) {
      row({Gb(p.weights.total()), Gb(p.kv_budget_bytes), plan::TokensShort(l.tokens),
           Gb(static_cast<double>(l.kv_bytes)), PerGpu(l.n), Commas(l.n.per_group), PerRack(l.n),
           StepMs(l.decode)});
    }
    if (p.mix) {
      row({Gb(p.weights.total()), Gb(p.kv_budget_bytes), "mix", Gb(p.mix->mean_kv_bytes),
           PerGpu(p.mix->n), Commas(p.mix->n.per_group), PerRack(p.mix->n), StepMs(p.mix->decode)});
    }
  }
  return t.Render() + errors;
}

std::string HardwareList() {
  Table t({"preset", "GPU", "HBM nominal GB", "HBM usable GB", "BW TB/s", "FP8 TFLOPS",
           "FP4 TFLOPS", "NVLink domain", "link GB/s"});
  for (const plan::Hardware& h : plan::HardwareTable()) {
    t.Row({h.name, h.description, FixedDigits(h.hbm_nominal_gb, 0), FixedDigits(h.hbm_usable_gb, 0),
           FixedDigits(h.hbm_bw_tbs, 2), Commas(static_cast<int64_t>(h.fp8_tflops)),
           h.fp4_tflops > 0 ? Commas(static_cast<int64_t>(h.fp4_tflops)) : "-",
           h.domain_name + " (" + std::to_string(h.domain_gpus) + " GPUs)",
           FixedDigits(h.link_gbs, h.link_gbs == std::floor(h.link_gbs) ? 0 : 1)});
  }
  return t.Render();
}

// Writes beside the target and renames, so readers never see a half-written file.
Status WriteFileAtomically(const std::string& path, const std::string& contents) {
  namespace fs = std::filesystem;
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << contents;
    f.close();
    if (!f) {
      std::error_code ec;
      fs::remove(tmp, ec);
      return Status::IoError("--svg " + path + ": cannot write " + tmp);
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    return Status::IoError("--svg " + path + ": cannot rename into place: " + ec.message());
  }
  return Status::Ok();
}

int RunPlan(const PlanCliOptions& o) {
  if (o.list_hardware) {
    std::fputs(HardwareList().c_str(), stdout);
    return 0;
  }
  Result<std::vector<plan::PlanOptions>> options = plan::ResolvePlanRequest(
      ToRequest(o), [](const std::string& path) { return checkpoint::LoadModelConfig(path); });
  if (!options.ok()) return ReportError(options.status());
  const std::vector<PlanCase> cases = plan::PlanAll(*options);
  size_t planned = 0;
  for (const PlanCase& c : cases) planned += c.plan ? 1 : 0;
  if (cases.size() == 1 && planned == 0) return ReportError(cases[0].status);
  if (o.json) {
    std::fputs((plan::PlansJson(cases).dump(2) + "\n").c_str(), stdout);
  } else if (o.csv) {
    std::fputs(plan::PlansCsv(cases).c_str(), stdout);
  } else if (cases.size() == 1 || o.detail) {
    for (const PlanCase& c : cases) {
      std::fputs(c.plan ? DetailReport(*c.plan).c_str()
                        : ("not planned: " + c.status.message() + "\n").c_str(),
                 stdout);
      if (cases.size() > 1) std::fputs("\n", stdout);
    }
  } else {
    std::fputs(SummaryReport(cases).c_str(), stdout);
  }
  if (!o.svg.empty()) {
    const Status s = WriteFileAtomically(o.svg, plan::RenderSvg(cases));
    if (!s.ok()) return ReportError(s);
    std::fprintf(stderr, "wrote %s (%zu series)\n", o.svg.c_str(), cases.size());
  }
  return planned == 0 ? 1 : 0;
}

}  // namespace

void RegisterPlan(CLI::App& app, int* exit_code) {
  auto o = std::make_shared<PlanCliOptions>();
  CLI::App* cmd = app.add_subcommand(
      "plan",
      "Capacity planner: weights and KV per GPU, max concurrent requests per GPU, "
      "group and rack (docs/capacity.md)");
  o->cmd = cmd;
  cmd->add_option("-m,--model", o->models,
                  "Models: presets v4-pro, v4-flash, v3.2, or config.json paths (default "
                  "v4-pro; repeat or comma-separate)")
      ->delimiter(',');
  cmd->add_option("--hw", o->hardware,
                  "Hardware presets: h100 h200 b200 b300 gb200 gb300 mi300x mi355x (default "
                  "gb300; usable HBM)")
      ->delimiter(',');
  cmd->add_flag("--nominal", o->nominal, "Use the datasheet HBM instead of the usable figure");
  cmd->add_option("--hbm", o->hbm, "HBM per GPU in GB (custom GPU or override)");
  cmd->add_option("--bw", o->bw, "HBM bandwidth in TB/s (custom GPU or override)");
  cmd->add_option("--layout", o->layout,
                  "Parallel layout shorthand: dep16, dep8, tp8, "
                  "tp2dp8 (default dep16)");
  cmd->add_option("--tp", o->tp, "Attention tensor parallel degree");
  cmd->add_option("--dp", o->dp, "Attention data parallel degree");
  cmd->add_option("--ep", o->ep, "Expert parallel degree (default tp x dp)");
  cmd->add_option("--redundant-experts", o->redundant, "EPLB redundant experts per group");
  cmd->add_option("--expert-dtype", o->expert_dtype,
                  "Routed expert storage: fp8, mxfp4, nvfp4, bf16 (default: the checkpoint's)");
  cmd->add_option("--dense-weights", o->dense_weights,
                  "Non-expert weights: stored (default: each tensor at the bytes the checkpoint "
                  "stores it in, what a rank holds) or fp8 (every parameter at FP8, capacity.md "
                  "§4's simplification)");
  cmd->add_option("--entry", o->entry, "V4 KV entry format: fp8 (584 B, default) or bf16");
  cmd->add_option("--indexer", o->indexer,
                  "Indexer key cache: fp4 (V4 default), fp8 (V3.2 default), bf16, none");
  cmd->add_option("--mla", o->mla,
                  "V3.2 MLA record: fp8 (656 B, default), bf16, fp8-noscale (640), 584, 576");
  cmd->add_flag("--no-compressor-state", o->no_compressor_state,
                "Leave the V4 compressor state out of the KV (capacity.md §3 basis)");
  cmd->add_flag("--no-mtp-weights", o->no_mtp_weights, "Leave the MTP module's weights out");
  cmd->add_option("--util", o->util, "Fraction of HBM the engine may use (default 0.90)");
  cmd->add_option("--workspace", o->workspace, "Workspace reserve per GPU in GB (default 8)");
  cmd->add_option("--kv-budget", o->kv_budget,
                  "Fixed KV budget per GPU in GB (ignores weights; reproduces the seed)");
  cmd->add_option("--ctx", o->contexts,
                  "Context lengths per request: 131072, 128K, 1M (= 2^20), 1e6 (default 1M)")
      ->delimiter(',');
  cmd->add_option("--mix", o->mix, "Length mix, e.g. 8K:0.6,128K:0.3,1M:0.1");
  cmd->add_option("--concurrency", o->concurrency,
                  "Requests per GPU for the max-context answer (default 1)")
      ->delimiter(',');
  cmd->add_option("--bw-efficiency", o->bw_efficiency,
                  "Achievable fraction of peak HBM bandwidth in the decode floor (default 1)");
  cmd->add_option("--rack-gpus", o->rack_gpus,
                  "GPUs per rack for the per-rack count "
                  "(default: NVL72 = 72, HGX node = 8)");
  cmd->add_option("--link-bw", o->link_bw,
                  "Scale-up link bandwidth per GPU and direction in GB/s for the expert "
                  "all-to-all (default: the preset's NVLink / Infinity Fabric)");
  cmd->add_option("--nic-bw", o->nic_bw,
                  "Scale-out bandwidth per GPU and direction in GB/s, for a group larger than "
                  "the NVLink domain (default 50 = one 400 Gb/s NIC per GPU)");
  cmd->add_option("--a2a-dispatch", o->a2a_dispatch,
                  "Row format of the expert all-to-all dispatch: bf16 (the engine's, default) "
                  "or fp8 (DeepEP-style)");
  auto* json = cmd->add_flag("--json", o->json, "Print JSON");
  cmd->add_flag("--csv", o->csv, "Print CSV")->excludes(json);
  cmd->add_flag("--detail", o->detail, "Full report for every case (default when one case)");
  cmd->add_option("--svg", o->svg, "Also write an SVG plot of concurrency vs context length");
  cmd->add_flag("--list-hardware", o->list_hardware, "Print the hardware presets and exit");
  cmd->callback([o, exit_code] { *exit_code = RunPlan(*o); });
}

}  // namespace dsv4::cli
