// dsv4 bench serve: N synthetic requests through the real engine (continuous batching, paged
// KV under a budget). Real compute on a model, or --layout: admission at real dimensions with
// a stand-in that only accounts pages (1M-token prompts cannot be prefilled on 2 cores).
// --compare-v32: the same workload and KV budget on the V4 model and on the tiny V3.2 model
// (both on the paged KV manager: admission, preemption, prefix cache), side by side.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench_commands.h"
#include "byte_size.h"
#include "kv_cache_flags.h"
#include "commands.h"
#include "expert_parallel_flags.h"
#include "core/rng.h"
#include "dsv4/engine.h"
#include "model_arg.h"
#include "speculative_flags.h"
#include "plan/args.h"
#include "runner/accounting_lm.h"
#include "runner/loaded_model.h"
#include "testing/weight_generator.h"
#include "table.h"

namespace dsv4::cli {
namespace {

struct ServeOptions {
  std::string model;
  std::string layout;  // v3.2 | v4-pro | v4-flash | all: accounting mode
  bool compare_v32 = false;  // compute mode, also on the built-in tiny V3.2 model
  int64_t requests = 0;  // 0: 16 with a model; capacity + 10% with --layout
  std::string prompt_len = "256";
  std::string output_len = "32";
  std::string kv_budget = "1GiB";
  std::string shared_prefix = "0";  // tokens every prompt starts with (prefix-cache hits)
  bool no_prefix_cache = false;
  int64_t max_batched_tokens = 256;
  int64_t max_seqs = 64;
  int threads = 0;
  uint64_t seed = 1;
  bool json = false;
  KvCacheDiskFlags kv_cache;
  SpeculativeFlags speculative;
  checkpoint::LoadOptions load;
  EpFlags ep;
};

struct ServeResult {
  std::string label;
  std::string name;  // the layout or the served model's name
  int64_t requests = 0, prompt = 0, output = 0, budget = 0, kv_per_request = 0;
  double seconds = 0;
  int64_t generated = 0, prompt_tokens = 0, preemptions = 0, max_running = 0, finished = 0;
  int64_t prefix_hits = 0, prefix_hit_tokens = 0;
  EngineStats tiers;  // the prefix_ram_* / prefix_disk_* and spec_* fields
  std::string speculative;  // Engine::speculative_summary
  std::string speculative_report;  // SpeculativeReport
  std::vector<double> ttft, tpot;
  std::vector<std::array<double, 4>> timeline;  // seconds, running, waiting, kv bytes
  std::vector<EngineRankStats> ranks;  // data-parallel serving (--ep): every rank's
};

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  return v[i];
}

// The engine options of every run (and of every rank's engine under --ep).
Result<EngineOptions> BenchEngineOptions(const ServeOptions& o) {
  EngineOptions eo;
  eo.threads = o.threads;
  DSV4_ASSIGN_OR_RETURN(eo.kv_budget_bytes, ParseByteSize(o.kv_budget));
  eo.max_num_batched_tokens = o.max_batched_tokens;
  eo.max_num_seqs = o.max_seqs;
  eo.max_queued_requests = 1 << 20;
  eo.prefix_caching = !o.no_prefix_cache;
  eo.prefix_snapshot_interval = 128;
  DSV4_RETURN_IF_ERROR(ApplyKvCacheDiskFlags(o.kv_cache, &eo));
  ApplySpeculativeFlags(o.speculative, &eo);
  return eo;
}

// One run: `layout` in accounting mode, else compute mode on `compute` (data-parallel over
// the ranks of `dp` when set).
Result<ServeResult> RunServe(const ServeOptions& o, const std::string& layout,
                             const ModelFactory& compute,
                             const std::shared_ptr<dist::ExpertParallel>& dp = nullptr) {
  ServeResult res;
  DSV4_ASSIGN_OR_RETURN(res.prompt, plan::ParseTokens(o.prompt_len));
  DSV4_ASSIGN_OR_RETURN(res.output, plan::ParseTokens(o.output_len));
  DSV4_ASSIGN_OR_RETURN(res.budget, ParseByteSize(o.kv_budget));
  DSV4_ASSIGN_OR_RETURN(EngineOptions eo, BenchEngineOptions(o));
  eo.data_parallel = dp;
  // --layout: the stand-in that only accounts pages, at the preset's real dimensions.
  const ModelFactory model = layout.empty() ? compute : ModelFactory([layout] {
    return runner::AccountingModel(layout);
  });
  DSV4_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine, Engine::Create(model, eo));
  res.kv_per_request = engine->KvBytesAt(res.prompt + res.output);
  res.requests = o.requests > 0 ? o.requests
                 : layout.empty() ? 16
                                  : res.budget / std::max<int64_t>(res.kv_per_request, 1) * 11 / 10 + 1;
  res.name = layout.empty() ? engine->model_name() : layout;
  res.label = (layout.empty() ? "compute: " + engine->model_name() : "layout: " + layout) +
              (layout.empty() ? "" : " (KV accounting only, no tensors)");
  Rng rng(o.seed);
  DSV4_ASSIGN_OR_RETURN(const int64_t shared, o.shared_prefix == "0" ? Result<int64_t>(int64_t{0})
                                                                      : plan::ParseTokens(o.shared_prefix));
  std::vector<int32_t> common(static_cast<size_t>(std::min(shared, res.prompt)));
  for (auto& t : common) t = static_cast<int32_t>(rng.Below(static_cast<uint64_t>(engine->vocab_size())));
  std::vector<std::shared_ptr<RequestStream>> streams;
  engine->SetPaused(true);  // the whole workload arrives at t = 0
  for (int64_t i = 0; i < res.requests; ++i) {
    GenerationRequest r;
    r.prompt.resize(static_cast<size_t>(res.prompt), 1);
    if (layout.empty()) {  // token values only matter when something is computed
      for (auto& t : r.prompt) t = static_cast<int32_t>(rng.Below(static_cast<uint64_t>(engine->vocab_size())));
      std::copy(common.begin(), common.end(), r.prompt.begin());
    }
    r.stop.max_new_tokens = res.output;
    r.stop.ignore_eos = true;
    DSV4_ASSIGN_OR_RETURN(std::shared_ptr<RequestStream> s, engine->Submit(std::move(r)));
    streams.push_back(std::move(s));
  }
  const auto start = std::chrono::steady_clock::now();
  engine->SetPaused(false);
  std::vector<double> first(streams.size(), -1), last(streams.size(), -1);
  std::vector<int64_t> count(streams.size(), 0);
  std::vector<bool> done(streams.size(), false);
  size_t remaining = streams.size();
  double next_sample = 0;
  while (remaining > 0) {
    bool progressed = false;
    for (size_t i = 0; i < streams.size(); ++i) {
      if (done[i]) continue;
      TokenEvent ev;
      bool timed_out = false;
      while (streams[i]->NextFor(&ev, std::chrono::milliseconds(0), &timed_out)) {
        progressed = true;
        if (ev.finished) {
          done[i] = true;
          --remaining;
          break;
        }
        if (first[i] < 0) first[i] = ev.seconds;
        last[i] = ev.seconds;
        ++count[i];
      }
    }
    const double now = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (now >= next_sample || remaining == 0) {
      const EngineStats st = engine->Stats();
      res.timeline.push_back({now, double(st.running), double(st.waiting), double(st.kv.used_bytes)});
      next_sample = now + 0.05;
    }
    if (!progressed) std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (size_t i = 0; i < streams.size(); ++i) {
    if (first[i] >= 0) res.ttft.push_back(first[i]);
    if (count[i] > 1) res.tpot.push_back((last[i] - first[i]) / double(count[i] - 1));
  }
  const EngineStats st = engine->Stats();
  res.generated = st.generated_tokens;
  res.prompt_tokens = st.prompt_tokens;
  res.preemptions = st.preemptions;
  res.max_running = st.max_running;
  res.finished = st.finished;
  res.prefix_hits = st.prefix_hits;
  res.prefix_hit_tokens = st.prefix_hit_tokens;
  res.tiers = st;
  res.speculative = engine->speculative_summary();
  res.speculative_report = SpeculativeReport(*engine, st);
  res.ranks = st.ranks;
  if (!st.ranks.empty()) {  // every rank's tokens (the fields above are rank 0's engine's)
    res.generated = res.prompt_tokens = 0;
    for (const EngineRankStats& r : st.ranks) {
      res.generated += r.generated_tokens;
      res.prompt_tokens += r.prompt_tokens;
    }
  }
  return res;
}

nlohmann::json ToJsonCommon(const ServeResult& r) {
  return {{"mode", r.label},
          {"model", r.name},
          {"requests", r.requests},
          {"prompt_tokens_each", r.prompt},
          {"output_tokens_each", r.output},
          {"kv_budget_bytes", r.budget},
          {"kv_bytes_per_request", r.kv_per_request},
          {"capacity_floor", r.budget / std::max<int64_t>(r.kv_per_request, 1)},
          {"max_concurrent", r.max_running},
          {"preemptions", r.preemptions},
          {"prefix_hits", r.prefix_hits},
          {"prefix_hit_tokens", r.prefix_hit_tokens},
          {"prefix_tiers",
           {{"ram", {{"hits", r.tiers.prefix_ram_hits},
                     {"hit_tokens", r.tiers.prefix_ram_hit_tokens},
                     {"bytes", r.tiers.prefix_ram_bytes},
                     {"restore_seconds", r.tiers.prefix_ram_restore_seconds}}},
            {"disk", {{"hits", r.tiers.prefix_disk_hits},
                      {"hit_tokens", r.tiers.prefix_disk_hit_tokens},
                      {"bytes", r.tiers.prefix_disk_bytes},
                      {"entries", r.tiers.prefix_disk_entries},
                      {"written_bytes", r.tiers.prefix_disk_written_bytes},
                      {"read_bytes", r.tiers.prefix_disk_read_bytes},
                      {"rejected_files", r.tiers.prefix_disk_rejected_files},
                      {"restore_seconds", r.tiers.prefix_disk_restore_seconds}}}}},
          {"speculative",
           {{"drafter", r.speculative},
            {"verifications", r.tiers.spec_verifications},
            {"draft_tokens", r.tiers.spec_draft_tokens},
            {"accepted_tokens", r.tiers.spec_accepted_tokens},
            {"acceptance_rate", r.tiers.spec_acceptance_rate()},
            {"mean_accepted_length", r.tiers.spec_mean_accepted_length()},
            {"drafted_by_position", r.tiers.spec_drafted_at},
            {"accepted_by_position", r.tiers.spec_accepted_at}}},
          {"seconds", r.seconds},
          {"output_tokens_per_s", double(r.generated) / r.seconds},
          {"total_tokens_per_s", double(r.generated + r.prompt_tokens) / r.seconds},
          {"ttft_p50_s", Percentile(r.ttft, 0.5)}, {"ttft_p90_s", Percentile(r.ttft, 0.9)},
          {"ttft_p99_s", Percentile(r.ttft, 0.99)}, {"tpot_p50_s", Percentile(r.tpot, 0.5)},
          {"tpot_p90_s", Percentile(r.tpot, 0.9)}, {"tpot_p99_s", Percentile(r.tpot, 0.99)}};
}

nlohmann::json ToJson(const ServeResult& r) {
  nlohmann::json j = ToJsonCommon(r);
  if (r.ranks.empty()) return j;
  nlohmann::json ranks = nlohmann::json::array();
  for (const EngineRankStats& k : r.ranks) {
    ranks.push_back({{"rank", k.rank}, {"placed", k.placed}, {"finished", k.finished},
                     {"steps", k.steps}, {"joined_steps", k.joined_steps},
                     {"prompt_tokens", k.prompt_tokens}, {"generated_tokens", k.generated_tokens},
                     {"exchange_bytes_sent", k.exchange_bytes_sent},
                     {"exchange_bytes_received", k.exchange_bytes_received},
                     {"exchange_seconds", k.exchange_seconds}});
  }
  j["ranks"] = std::move(ranks);
  return j;
}

void PrintText(const ServeResult& r) {
  std::printf("mode: %s\n", r.label.c_str());
  std::printf("requests: %lld x (%lld prompt + %lld output tokens); KV budget %s; KV per request "
              "%s -> capacity floor(budget / KV per request) = %lld\n",
              static_cast<long long>(r.requests), static_cast<long long>(r.prompt),
              static_cast<long long>(r.output), HumanBytes(double(r.budget)).c_str(),
              HumanBytes(double(r.kv_per_request)).c_str(),
              static_cast<long long>(r.budget / std::max<int64_t>(r.kv_per_request, 1)));
  Table t({"t (s)", "running", "waiting", "KV used"});
  const size_t stride = std::max<size_t>(1, r.timeline.size() / 8);
  for (size_t i = 0; i < r.timeline.size(); i += stride) {
    const auto& p = r.timeline[i];
    char ts[32];
    std::snprintf(ts, sizeof(ts), "%.2f", p[0]);
    t.Row({ts, std::to_string(int64_t(p[1])), std::to_string(int64_t(p[2])), HumanBytes(p[3])});
  }
  std::printf("admitted concurrency over time:\n%s", t.Render().c_str());
  std::printf("max concurrent: %lld, finished: %lld, preemptions: %lld, prefix hits: %lld "
              "(%lld prompt tokens reused)\n",
              static_cast<long long>(r.max_running), static_cast<long long>(r.finished),
              static_cast<long long>(r.preemptions), static_cast<long long>(r.prefix_hits),
              static_cast<long long>(r.prefix_hit_tokens));
  const EngineStats& pt = r.tiers;
  std::printf("prefix tiers: RAM %lld hits (%lld tokens, %.3f s restoring, %s held); disk %lld "
              "hits (%lld tokens, %.3f s restoring), %lld files (%s), %s written, %s read, "
              "%lld bad files skipped\n",
              static_cast<long long>(pt.prefix_ram_hits), static_cast<long long>(pt.prefix_ram_hit_tokens),
              pt.prefix_ram_restore_seconds, HumanBytes(double(pt.prefix_ram_bytes)).c_str(),
              static_cast<long long>(pt.prefix_disk_hits),
              static_cast<long long>(pt.prefix_disk_hit_tokens), pt.prefix_disk_restore_seconds,
              static_cast<long long>(pt.prefix_disk_entries),
              HumanBytes(double(pt.prefix_disk_bytes)).c_str(),
              HumanBytes(double(pt.prefix_disk_written_bytes)).c_str(),
              HumanBytes(double(pt.prefix_disk_read_bytes)).c_str(),
              static_cast<long long>(pt.prefix_disk_rejected_files));
  std::printf("%s\n", r.speculative_report.c_str());
  std::printf("throughput: %.1f output tokens/s, %.1f total tokens/s over %.2f s\n",
              double(r.generated) / r.seconds, double(r.generated + r.prompt_tokens) / r.seconds,
              r.seconds);
  std::printf("TTFT p50/p90/p99: %.3f / %.3f / %.3f s; TPOT p50/p90/p99: %.2f / %.2f / %.2f ms\n",
              Percentile(r.ttft, 0.5), Percentile(r.ttft, 0.9), Percentile(r.ttft, 0.99),
              1e3 * Percentile(r.tpot, 0.5), 1e3 * Percentile(r.tpot, 0.9),
              1e3 * Percentile(r.tpot, 0.99));
  if (r.ranks.empty()) return;
  Table rt({"rank", "placed", "finished", "steps", "joined", "prompt tok", "generated",
            "MoE sent", "MoE received", "all-to-all s"});
  for (const EngineRankStats& k : r.ranks) {
    char secs[32];
    std::snprintf(secs, sizeof(secs), "%.3f", k.exchange_seconds);
    rt.Row({std::to_string(k.rank), std::to_string(k.placed), std::to_string(k.finished),
            std::to_string(k.steps), std::to_string(k.joined_steps), std::to_string(k.prompt_tokens),
            std::to_string(k.generated_tokens), HumanBytes(double(k.exchange_bytes_sent)),
            HumanBytes(double(k.exchange_bytes_received)), secs});
  }
  std::printf("data-parallel ranks (each its own engine; MoE rows exchanged every step):\n%s",
              rt.Render().c_str());
}

// The runs side by side: same budget, admitted concurrency, throughput and latency.
void PrintComparison(const std::vector<ServeResult>& results) {
  Table t({"model", "KV per request", "admitted", "vs " + results[0].name, "preemptions",
           "prefix hits", "output tok/s", "TTFT p50 (s)", "TPOT p50 (ms)"});
  for (const auto& r : results) {
    char ratio[32], tput[32], ttft[32], tpot[32];
    std::snprintf(ratio, sizeof(ratio), "%.2fx",
                  double(r.max_running) / double(std::max<int64_t>(results[0].max_running, 1)));
    std::snprintf(tput, sizeof(tput), "%.1f", double(r.generated) / r.seconds);
    std::snprintf(ttft, sizeof(ttft), "%.3f", Percentile(r.ttft, 0.5));
    std::snprintf(tpot, sizeof(tpot), "%.2f", 1e3 * Percentile(r.tpot, 0.5));
    t.Row({r.name, HumanBytes(double(r.kv_per_request)), std::to_string(r.max_running), ratio,
           std::to_string(r.preemptions), std::to_string(r.prefix_hits), tput, ttft, tpot});
  }
  std::printf("\nsame budget, side by side:\n%s", t.Render().c_str());
}

// The built-in tiny V3.2 model (--compare-v32).
ModelFactory TinyV32Factory(const checkpoint::LoadOptions& load) {
  return [load]() -> Result<std::unique_ptr<runner::LoadedModel>> {
    DSV4_ASSIGN_OR_RETURN(checkpoint::Checkpoint ck, fixtures::BuiltinTinyV32Model());
    return runner::LoadCheckpoint(std::move(ck), "", load);
  };
}

Status Serve(const ServeOptions& o) {
  // --ep N under mpirun: data-parallel serving (engine/data_parallel.h); rank 0 runs the
  // workload, the other ranks run what it places on them.
  std::unique_ptr<EpSession> ep;
  if (o.ep.ep > 1 || dist::MpirunProcesses() > 1) {
    if (!o.layout.empty() || o.compare_v32) {
      return Status::InvalidArgument("--ep runs compute mode on one model: without --layout "
                                     "and --compare-v32");
    }
    DSV4_ASSIGN_OR_RETURN(checkpoint::Checkpoint ck, LoadModelArg(o.model));
    checkpoint::LoadOptions load = o.load;
    const bool drafter = ck.drafter != checkpoint::DraftFamily::kNone;
    DSV4_ASSIGN_OR_RETURN(ep, EpSession::Start(o.ep, ck, drafter, &load));
    ep->ServeDataParallel();
    if (ep->active()) {
      const ModelFactory model = ModelArgFactory(o.model, load);
      if (!ep->leads()) {
        DSV4_ASSIGN_OR_RETURN(EngineOptions eo, BenchEngineOptions(o));
        return ep->ServeFollower(model, eo);
      }
      Result<ServeResult> run = RunServe(o, "", model, ep->expert_parallel());
      if (!run.ok()) ep->AbortJob(run.status());
      const ServeResult& r = *run;
      if (o.json) {
        nlohmann::json j = nlohmann::json::array({ToJson(r)});
        std::printf("%s\n", j.dump(2).c_str());
      } else {
        PrintText(r);
      }
      ep->PrintCounters();
      return Status::Ok();
    }
  }
  std::vector<std::string> layouts;
  if (o.layout == "all") {
    layouts = {"v3.2", "v4-pro", "v4-flash"};
  } else if (o.compare_v32) {
    layouts = {"", ""};  // compute mode twice: V3.2, then the V4 model
  } else {
    layouts = {o.layout};
  }
  std::vector<ServeResult> results;
  for (size_t i = 0; i < layouts.size(); ++i) {
    const ModelFactory compute = o.compare_v32 && i == 0 ? TinyV32Factory(o.load)
                                                         : ModelArgFactory(o.model, o.load);
    DSV4_ASSIGN_OR_RETURN(ServeResult r, RunServe(o, layouts[i], compute));
    results.push_back(std::move(r));
  }
  if (o.json) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& r : results) j.push_back(ToJson(r));
    std::printf("%s\n", j.dump(2).c_str());
    return Status::Ok();
  }
  for (size_t i = 0; i < results.size(); ++i) {
    if (i) std::printf("\n");
    PrintText(results[i]);
  }
  if (results.size() > 1) PrintComparison(results);
  return Status::Ok();
}

}  // namespace

void RegisterBenchServe(CLI::App& bench, int* exit_code) {
  auto o = std::make_shared<ServeOptions>();
  CLI::App* cmd = bench.add_subcommand(
      "serve", "Synthetic requests through the engine: concurrency, throughput, TTFT, TPOT");
  cmd->add_option("--model", o->model, "Checkpoint folder (default: built-in dsv4-tiny)");
  cmd->add_option("--layout", o->layout,
                  "Admission run at real dimensions without compute: v3.2, v4-pro, v4-flash, all")
      ->check(CLI::IsMember({"v3.2", "v4-pro", "v4-flash", "all"}));
  cmd->add_flag("--compare-v32", o->compare_v32,
                "Compute mode on the built-in tiny V3.2 model too, same workload and KV budget, "
                "side by side with the V4 model");
  cmd->add_option("--requests", o->requests, "Number of requests (default: 16, or 10% over "
                  "the capacity with --layout)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--prompt-len", o->prompt_len, "Prompt tokens per request (e.g. 256, 1M)")
      ->capture_default_str();
  cmd->add_option("--output-len", o->output_len, "Generated tokens per request")
      ->capture_default_str();
  cmd->add_option("--shared-prefix", o->shared_prefix,
                  "Tokens every prompt starts with (exercises the prefix cache)")
      ->capture_default_str();
  cmd->add_flag("--no-prefix-cache", o->no_prefix_cache, "Turn prefix caching off");
  cmd->add_option("--kv-budget", o->kv_budget, "KV cache budget (e.g. 8GiB, 2TB)")
      ->capture_default_str();
  cmd->add_option("--max-batched-tokens", o->max_batched_tokens, "Tokens per engine step")
      ->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--max-seqs", o->max_seqs, "Running sequences at most")
      ->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--threads", o->threads, "Worker threads (0: all cores)");
  cmd->add_option("--seed", o->seed, "Seed of the synthetic prompts")->capture_default_str();
  cmd->add_flag("--json", o->json, "Print JSON");
  AddKvCacheDiskFlags(*cmd, &o->kv_cache);
  AddSpeculativeFlags(*cmd, &o->speculative);
  AddWeightCheckFlag(*cmd, &o->load);
  AddEpFlags(*cmd, &o->ep);
  cmd->callback([o, exit_code] {
    if (!o->layout.empty() && !o->model.empty()) {
      *exit_code = ReportError(Status::InvalidArgument("--layout and --model exclude each other"));
      return;
    }
    if (!o->layout.empty() && o->compare_v32) {
      *exit_code = ReportError(Status::InvalidArgument(
          "--layout and --compare-v32 exclude each other (--layout all already compares)"));
      return;
    }
    Status s = Serve(*o);
    if (!s.ok()) *exit_code = ReportError(s);
  });
}

void RegisterBench(CLI::App& app, int* exit_code) {
  CLI::App* bench = app.add_subcommand("bench", "Benchmarks (serve, kv, decode)");
  bench->require_subcommand(1);
  RegisterBenchServe(*bench, exit_code);
  RegisterBenchKv(*bench, exit_code);
  RegisterBenchDecode(*bench, exit_code);
  RegisterBenchLayer(*bench, exit_code);
  RegisterBenchDraft(*bench, exit_code);
  RegisterBenchPrefix(*bench, exit_code);
  RegisterBenchDepth(*bench, exit_code);
  RegisterBenchSpec(*bench, exit_code);
}

}  // namespace dsv4::cli
