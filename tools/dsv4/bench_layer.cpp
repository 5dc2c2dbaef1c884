// dsv4 bench layer: one full V4 block per layer type at real dimensions (bench/layer_cost.h)
// in decode (batch B), speculative verify (k + 1 tokens of one sequence) and prefill (a chunk)
// steps, each against its roofline bound from the machine limits measured in the same run;
// then the whole model (per-type costs x the layer schedule + head), here and bounded on a
// machine given by --bandwidth/--cores, and decode tokens/s of an MTP-like drafter as a
// function of the acceptance rate, computed from the measured step costs.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/decode_bound.h"
#include "bench/layer_cost.h"
#include "bench/roofline.h"
#include "bench_commands.h"
#include "core/thread_pool.h"
#include "kernels/cpu/isa.h"
#include "model_arg.h"
#include "table.h"

namespace dsv4::cli {
namespace {

using bench::StepMode;

struct LayerCliOptions {
  std::string preset = "v4-flash";
  std::string config;
  std::vector<std::string> layers;
  std::vector<int64_t> batches = {1, 2, 4, 8, 16, 32, 64};
  std::vector<int64_t> drafts = {1, 2, 4, 6, 8};
  int64_t prefill = 512;
  std::string depth = "4K";
  int threads = 0;
  int64_t iters = 3;
  uint64_t seed = 1;
  double bandwidth_gb = 0;
  int64_t cores = 0;
  bool json = false;
};

// Acceptance rates of the speculative table; 0.6 is what MTP's k = 1 mean accepted length of
// ~1.6 tokens per step (spec §11.4) stands for.
constexpr double kAlphas[] = {0.5, 0.6, 0.7, 0.8, 0.9};

struct RunInfo {
  int threads = 0;
  kernels::Isa isa = kernels::Isa::kScalar;
  bench::MachineLimits limits;
  bench::Peak peak = bench::Peak::kFma;
  bench::OtherMachine other;
  int64_t iters = 0;
  double seconds = 0;
  int64_t steps = 0;
};

std::string ModeLabel(const bench::StepCost& s) {
  switch (s.mode) {
    case StepMode::kDecode:
      return "decode B=" + std::to_string(s.sequences);
    case StepMode::kVerify:
      return "verify k=" + std::to_string(s.rows - 1);
    case StepMode::kPrefill:
      return "prefill " + std::to_string(s.rows);
  }
  return "?";
}

// The whole-model step shapes: every shape the first type measured.
std::vector<const bench::StepCost*> Shapes(const bench::LayerBenchReport& r) {
  std::vector<const bench::StepCost*> out;
  if (r.types.empty()) return out;
  for (const bench::StepCost& s : r.types.front().steps) out.push_back(&s);
  return out;
}

void PrintText(const bench::LayerBenchReport& r, const RunInfo& run) {
  std::printf("Full V4 layers at real dimensions (dsv4 bench layer), %s, depth %s\n",
              r.label.c_str(), TokensLabel(r.depth).c_str());
  std::printf(
      "runs: v4::BlockForward (mHC, attention with compressors and indexer, MoE of %lld experts "
      "top-%lld + shared) and v4::HeadForward; random weights in the loaded formats (FP8 + E8M0 "
      "dense, MXFP4 experts%s), caches filled synthetically to the depth; 1 warm-up + %lld "
      "timed steps per shape\n",
      static_cast<long long>(r.config.n_routed_experts),
      static_cast<long long>(r.config.num_experts_per_tok),
      run.isa == kernels::Isa::kAvx512Bf16 ? " repacked into FP4 tiles" : "",
      static_cast<long long>(run.iters));
  std::printf(
      "threads: %d; roofline limits (same pool; %s kernels): read %.1f GB/s, peak %.1f GFLOP/s "
      "%s\n",
      run.threads, std::string(kernels::IsaName(run.isa)).c_str(),
      run.limits.read_bytes_per_s / 1e9, bench::PeakFlops(run.limits, run.peak) / 1e9,
      std::string(bench::PeakName(run.peak)).c_str());
  if (run.limits.fma_l1_flops > 0 && run.limits.fma_flops > 0) {
    std::printf(
        "for reference, not a bound: FMAs fed from L1 in the GEMMs' register blocking %.1f "
        "GFLOP/s (%.2f of the FMA peak %.1f): the ceiling of a GEMM before weight decode\n",
        run.limits.fma_l1_flops / 1e9, run.limits.fma_l1_flops / run.limits.fma_flops,
        run.limits.fma_flops / 1e9);
  }
  Table t({"type", "step", "rows", "ms/step", "tokens/s", "experts touched", "weights read",
           "KV read", "GFLOP", "bound ms", "bound/measured"});
  for (const bench::LayerTypeCost& ty : r.types) {
    for (const bench::StepCost& s : ty.steps) {
      t.Row({ty.name, ModeLabel(s), std::to_string(s.rows), Ms(s.ms), Fixed(s.tokens_per_s(), 1),
             Fixed(s.work.experts_touched, 1), Gb(s.work.weight_bytes), Gb(s.work.kv_bytes),
             Fixed(s.work.flops / 1e9, 2), Ms(s.bound_ms), Fixed(s.bound_over_measured(), 2)});
    }
  }
  std::printf("\nper layer (one block):\n%s", t.Render().c_str());
  Table h({"head rows", "ms", "bound ms", "bound/measured"});
  for (const bench::HeadCost& hc : r.heads) {
    h.Row({std::to_string(hc.rows), Ms(hc.ms), Ms(hc.bound_ms),
           Fixed(hc.ms > 0 ? hc.bound_ms / hc.ms : 0, 2)});
  }
  std::printf("\nhead (HC_head + norm + FP32 logits over %lld tokens):\n%s",
              static_cast<long long>(r.config.vocab_size), h.Render().c_str());
  if (!r.complete()) {
    std::printf(
        "\nwhole model: not extrapolated (not every layer type of %s was run; add them to "
        "--layers)\n",
        r.label.c_str());
    return;
  }
  std::string schedule;
  for (const bench::LayerTypeCost& ty : r.types) {
    schedule += (schedule.empty() ? "" : " + ") + std::to_string(ty.full_count) + " " + ty.name;
  }
  std::vector<std::string> header = {"step", "ms/step", "tokens/s", "bound ms",
                                     "bound/measured"};
  const bool other = run.other.read_bytes_per_s > 0 && run.other.cores > 0;
  if (other) header.insert(header.end(), {"bound ms there", "bound tokens/s there"});
  Table w(header);
  for (const bench::StepCost* s : Shapes(r)) {
    const bench::ModelStep m = bench::WholeModelStep(r, s->mode, s->rows);
    const double tps = m.ms > 0 ? 1e3 * static_cast<double>(s->rows) / m.ms : 0;
    std::vector<std::string> row = {ModeLabel(*s), Ms(m.ms), Fixed(tps, 1), Ms(m.bound_ms),
                                    Fixed(m.ms > 0 ? m.bound_ms / m.ms : 0, 2)};
    if (other) {
      const double b = bench::WholeModelBoundMsOn(r, s->mode, s->rows, run.other, run.limits,
                                                  run.peak, run.threads);
      row.push_back(Ms(b));
      row.push_back(Fixed(b > 0 ? 1e3 * static_cast<double>(s->rows) / b : 0, 1));
    }
    w.Row(std::move(row));
  }
  std::printf("\nwhole model (%s layers = %s, + head; MTP/DSpark drafters and embedding not "
              "counted):\n%s",
              std::to_string(r.config.num_hidden_layers).c_str(), schedule.c_str(),
              w.Render().c_str());
  if (other) {
    std::printf("there = a machine with %.1f GB/s read bandwidth and %lld cores (this "
                "machine's per-core peak), roofline bound only\n",
                run.other.read_bytes_per_s / 1e9, static_cast<long long>(run.other.cores));
  }
  // Verification cost.
  const bench::ModelStep one = bench::WholeModelStep(r, StepMode::kVerify, 1);
  std::vector<std::string> vh = {"k (drafts)", "tokens verified"};
  for (const bench::LayerTypeCost& ty : r.types) vh.push_back(ty.name + " step vs 1");
  vh.insert(vh.end(), {"model ms/step", "model step vs 1", "per token vs 1"});
  Table v(vh);
  for (const bench::StepCost* s : Shapes(r)) {
    if (s->mode != StepMode::kVerify) continue;
    std::vector<std::string> row = {std::to_string(s->rows - 1), std::to_string(s->rows)};
    for (const bench::LayerTypeCost& ty : r.types) {
      const bench::StepCost* a = ty.Find(StepMode::kVerify, s->rows);
      const bench::StepCost* b = ty.Find(StepMode::kVerify, 1);
      row.push_back(Fixed(a && b && b->ms > 0 ? a->ms / b->ms : 0, 2) + "x");
    }
    const bench::ModelStep m = bench::WholeModelStep(r, StepMode::kVerify, s->rows);
    const double x = one.ms > 0 ? m.ms / one.ms : 0;
    row.insert(row.end(), {Ms(m.ms), Fixed(x, 2) + "x",
                           Fixed(x / static_cast<double>(s->rows), 3) + "x"});
    v.Row(std::move(row));
  }
  std::printf("\nspeculative verify: one sequence, k + 1 tokens in one step vs 1 token:\n%s",
              v.Render().c_str());
  // Tokens/s against the acceptance rate.
  const double draft = bench::DraftMs(r);
  if (draft <= 0 || one.ms <= 0) {
    std::printf("speculative tokens/s: not computed (the MTP layer's type was not run)\n");
    return;
  }
  std::vector<std::string> sh = {"alpha"};
  std::vector<int64_t> ks;
  for (const bench::StepCost* s : Shapes(r)) {
    if (s->mode == StepMode::kVerify && s->rows > 1) ks.push_back(s->rows - 1);
  }
  for (int64_t k : ks) sh.push_back("k=" + std::to_string(k) + " tokens/s");
  sh.push_back("k=1 tokens/step");
  Table sp(sh);
  for (double a : kAlphas) {
    std::vector<std::string> row = {Fixed(a, 1)};
    for (int64_t k : ks) row.push_back(Fixed(bench::SpeculativeTokensPerS(r, k, a), 2));
    row.push_back(Fixed(bench::ExpectedTokensPerStep(a, 1), 2));
    sp.Row(std::move(row));
  }
  std::printf(
      "\ndecode tokens/s of one sequence with an MTP-like drafter vs acceptance rate alpha "
      "(computed from the measured step costs, not a measured speculative run): expected "
      "tokens per step (1 - alpha^(k+1)) / (1 - alpha) / (verify step of k + 1 tokens + k x "
      "draft %s ms = one %s block + head at 1 row); without speculation %.2f tokens/s. Peers "
      "report MTP k=1 mean accepted length ~1.6+ (alpha ~0.6), DSpark 2.2-2.9 per block of 5 "
      "(spec 11.4)\n%s",
      Ms(draft).c_str(),
      std::string(checkpoint::LayerKindName(r.config.layer_kind(r.config.num_hidden_layers)))
          .c_str(),
      1e3 / one.ms, sp.Render().c_str());
}

nlohmann::json Work(const bench::StepWork& w) {
  return {{"weight_bytes", w.weight_bytes},
          {"kv_bytes", w.kv_bytes},
          {"flops", w.flops},
          {"experts_touched", w.experts_touched}};
}

nlohmann::json ToJson(const bench::LayerBenchReport& r, const RunInfo& run) {
  nlohmann::json j;
  j["model"] = r.label;
  j["depth"] = r.depth;
  j["threads"] = run.threads;
  j["isa"] = std::string(kernels::IsaName(run.isa));
  j["read_gb_per_s"] = run.limits.read_bytes_per_s / 1e9;
  j["peak_gflops"] = bench::PeakFlops(run.limits, run.peak) / 1e9;
  j["fma_gflops"] = run.limits.fma_flops / 1e9;
  j["fma_l1_gflops"] = run.limits.fma_l1_flops / 1e9;
  j["peak"] = std::string(bench::PeakName(run.peak));
  for (const bench::LayerTypeCost& ty : r.types) {
    nlohmann::json t = {{"type", ty.name},
                        {"full_count", ty.full_count},
                        {"dense_bytes", ty.dense_bytes},
                        {"expert_bytes", ty.expert_bytes}};
    for (const bench::StepCost& s : ty.steps) {
      t["steps"].push_back({{"mode", std::string(bench::StepModeName(s.mode))},
                            {"sequences", s.sequences},
                            {"rows", s.rows},
                            {"ms", s.ms},
                            {"tokens_per_s", s.tokens_per_s()},
                            {"bound_ms", s.bound_ms},
                            {"bound_over_measured", s.bound_over_measured()},
                            {"work", Work(s.work)}});
    }
    j["types"].push_back(t);
  }
  for (const bench::HeadCost& h : r.heads) {
    j["heads"].push_back(
        {{"rows", h.rows}, {"ms", h.ms}, {"bound_ms", h.bound_ms}, {"work", Work(h.work)}});
  }
  if (r.complete()) {
    for (const bench::StepCost* s : Shapes(r)) {
      const bench::ModelStep m = bench::WholeModelStep(r, s->mode, s->rows);
      nlohmann::json e = {{"mode", std::string(bench::StepModeName(s->mode))},
                          {"rows", s->rows},
                          {"ms", m.ms},
                          {"bound_ms", m.bound_ms}};
      if (run.other.read_bytes_per_s > 0 && run.other.cores > 0) {
        e["bound_ms_there"] = bench::WholeModelBoundMsOn(r, s->mode, s->rows, run.other,
                                                         run.limits, run.peak, run.threads);
      }
      j["whole_model"].push_back(e);
    }
    j["draft_ms"] = bench::DraftMs(r);
    for (const bench::StepCost* s : Shapes(r)) {
      if (s->mode != StepMode::kVerify || s->rows < 2) continue;
      for (double a : kAlphas) {
        j["speculative"].push_back(
            {{"k", s->rows - 1},
             {"alpha", a},
             {"tokens_per_s", bench::SpeculativeTokensPerS(r, s->rows - 1, a)}});
      }
    }
  }
  j["run_seconds"] = run.seconds;
  return j;
}

Result<std::vector<checkpoint::LayerKind>> ParseKinds(const std::vector<std::string>& names) {
  std::vector<checkpoint::LayerKind> out;
  for (const std::string& n : names) {
    if (n == "swa") {
      out.push_back(checkpoint::LayerKind::kSwa);
    } else if (n == "csa") {
      out.push_back(checkpoint::LayerKind::kCsa);
    } else if (n == "hca") {
      out.push_back(checkpoint::LayerKind::kHca);
    } else {
      return Status::InvalidArgument("--layers: '" + n + "' is not a layer type; expected swa, "
                                     "csa or hca");
    }
  }
  return out;
}

Status RunLayer(const LayerCliOptions& o) {
  DSV4_ASSIGN_OR_RETURN(
      std::vector<NamedConfig> models,
      ResolveBenchModels(o.config.empty() ? std::vector<std::string>{o.preset}
                                          : std::vector<std::string>{},
                         o.config.empty() ? std::vector<std::string>{}
                                          : std::vector<std::string>{o.config}));
  bench::LayerBenchOptions b;
  DSV4_ASSIGN_OR_RETURN(b.kinds, ParseKinds(o.layers));
  DSV4_ASSIGN_OR_RETURN(std::vector<int64_t> depth, ParseTokenCounts({o.depth}, "--depth"));
  b.depth = depth.front();
  b.batches = o.batches;
  b.drafts = o.drafts;
  b.prefill = o.prefill;
  b.iters = o.iters;
  b.seed = o.seed;
  ThreadPool pool(o.threads);
  RunInfo run;
  run.threads = pool.num_threads();
  run.iters = o.iters;
  run.isa = kernels::ActiveIsa();
  run.limits = bench::MeasureLimits(pool, run.isa);
  run.peak = bench::BestExactPeak(run.limits, run.isa);
  run.other = {o.bandwidth_gb * 1e9, o.cores};
  b.limits = run.limits;
  b.peak = run.peak;
  const bool tty = isatty(STDERR_FILENO) != 0;
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  b.progress = [&](int64_t done, int64_t total) {
    run.steps = total;
    if (!tty) return;
    const double s = elapsed(), rate = static_cast<double>(done) / s;
    std::fprintf(stderr, "\rbench layer: %lld/%lld steps, %.2f steps/s, ETA %.0f s   ",
                 static_cast<long long>(done), static_cast<long long>(total), rate,
                 static_cast<double>(total - done) / rate);
    if (done == total) std::fprintf(stderr, "\n");
  };
  DSV4_ASSIGN_OR_RETURN(bench::LayerBenchReport r,
                        bench::MeasureLayers(pool, models.front().config, models.front().label, b));
  run.seconds = elapsed();
  if (!tty) {
    std::fprintf(stderr, "bench layer: %lld steps in %.1f s\n", static_cast<long long>(run.steps),
                 run.seconds);
  }
  if (o.json) {
    std::printf("%s\n", ToJson(r, run).dump(2).c_str());
  } else {
    PrintText(r, run);
  }
  return Status::Ok();
}

}  // namespace

void RegisterBenchLayer(CLI::App& bench, int* exit_code) {
  auto o = std::make_shared<LayerCliOptions>();
  CLI::App* cmd = bench.add_subcommand(
      "layer",
      "Full V4 layers at real dimensions: decode at batch B, speculative verify, prefill; "
      "roofline bounds, whole-model extrapolation, speculative tokens/s");
  cmd->add_option("--preset", o->preset, "Model preset (v4-flash, v4-pro, v4-tiny, ...)")
      ->capture_default_str();
  cmd->add_option("--config", o->config, "A config.json or checkpoint folder instead of --preset");
  cmd->add_option("--layers", o->layers, "Layer types, comma-separated: swa,csa,hca (default: all)")
      ->delimiter(',');
  cmd->add_option("--batch", o->batches, "Decode batch sizes, comma-separated")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--verify", o->drafts, "Draft counts k to verify (k + 1 tokens), comma-separated")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--prefill", o->prefill, "Prefill chunk tokens (0: none)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--depth", o->depth, "Tokens in the decode/verify caches (4K = 4096)")
      ->capture_default_str();
  cmd->add_option("--threads", o->threads, "Worker threads (0: all cores)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--iters", o->iters, "Timed steps per shape (after one warm-up step)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "Seed of the random weights and caches")
      ->capture_default_str();
  cmd->add_option("--bandwidth", o->bandwidth_gb,
                  "Another machine's read bandwidth in GB/s (with --cores): its bound");
  cmd->add_option("--cores", o->cores, "Another machine's core count (with --bandwidth)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--json", o->json, "Print JSON");
  cmd->callback([o, exit_code] {
    Status s = RunLayer(*o);
    if (!s.ok()) *exit_code = ReportError(s);
  });
}

}  // namespace dsv4::cli
