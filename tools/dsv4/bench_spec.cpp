// dsv4 bench spec: decode tokens/s as a function of the acceptance rate, MEASURED through the
// real engine. The workload (--requests random prompts, --output-len greedy tokens each) runs
// once without speculation, which records every request's output and the baseline decode
// tokens/s; then, for each draft length k and acceptance probability alpha, again with the
// replay drafter (runner/replay_drafter.h) proposing the recorded continuation right with
// probability alpha. That drafter costs nothing, so the curve isolates what verification
// costs and gains; a real drafter's own cost comes on top (`dsv4 bench draft`). Every run's
// outputs must equal the run without speculation, bit for bit (an error otherwise).
//
// Each configuration runs --repeats rounds, alternating with the others; the median counts.
// Decode tokens/s: the tokens generated after each request's first, summed over requests,
// divided by the time from the first request's first token to the last token of all.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench_commands.h"
#include "commands.h"
#include "core/rng.h"
#include "dsv4/engine.h"
#include "model_arg.h"
#include "plan/args.h"
#include "runner/loaded_model.h"
#include "runner/replay_drafter.h"
#include "table.h"

namespace dsv4::cli {
namespace {

struct SpecCliOptions {
  std::string model;
  int64_t requests = 4;
  std::string prompt_len = "64";
  std::string output_len = "32";
  std::vector<int64_t> draft_tokens = {1, 2, 4};
  std::vector<double> acceptance = {0, 0.2, 0.4, 0.6, 0.8, 1};
  int64_t repeats = 3;  // rounds over every configuration; the median tokens/s
  int threads = 0;
  uint64_t seed = 1;
  bool json = false;
  checkpoint::LoadOptions load;
};

struct SpecRun {
  int64_t k = 0;        // 0: speculation off
  double alpha = 0;     // the replay drafter's probability of a right draft
  double acceptance = 0, mean_accepted = 0;  // measured by the engine (EngineStats)
  int64_t verifications = 0;
  double decode_tps = 0;
  std::vector<std::vector<int32_t>> outputs;  // per request
};

// The workload through one engine made with `eo`.
Result<SpecRun> RunWorkload(const ModelFactory& model, const EngineOptions& eo,
                            const std::vector<std::vector<int32_t>>& prompts, int64_t output) {
  DSV4_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine, Engine::Create(model, eo));
  std::vector<std::shared_ptr<RequestStream>> streams;
  engine->SetPaused(true);  // the whole workload arrives at t = 0
  for (const std::vector<int32_t>& p : prompts) {
    GenerationRequest r;
    r.prompt = p;
    r.stop.max_new_tokens = output;
    r.stop.ignore_eos = true;
    DSV4_ASSIGN_OR_RETURN(std::shared_ptr<RequestStream> s, engine->Submit(std::move(r)));
    streams.push_back(std::move(s));
  }
  engine->SetPaused(false);
  SpecRun run;
  run.outputs.resize(streams.size());
  double first = -1, last = 0;  // seconds since start
  int64_t after_first = 0;
  for (size_t i = 0; i < streams.size(); ++i) {
    TokenEvent ev;
    while (streams[i]->Next(&ev)) {
      if (ev.finished) {
        if (ev.reason == FinishReason::kError) return Status::Internal("request failed: " + ev.error);
        break;
      }
      const double t = ev.seconds;  // all were submitted before the engine resumed
      if (ev.index == 0) {
        first = first < 0 ? t : std::min(first, t);
      } else {
        ++after_first;
      }
      last = std::max(last, t);
      run.outputs[i].push_back(ev.token);
    }
  }
  run.decode_tps = last > first ? static_cast<double>(after_first) / (last - first) : 0;
  const EngineStats st = engine->Stats();
  run.acceptance = st.spec_acceptance_rate();
  run.mean_accepted = st.spec_mean_accepted_length();
  run.verifications = st.spec_verifications;
  return run;
}

std::string Fmt(double v, const char* f) {
  char b[32];
  std::snprintf(b, sizeof(b), f, v);
  return b;
}

Status RunSpec(const SpecCliOptions& o) {
  DSV4_ASSIGN_OR_RETURN(const int64_t prompt_len, plan::ParseTokens(o.prompt_len));
  DSV4_ASSIGN_OR_RETURN(const int64_t output_len, plan::ParseTokens(o.output_len));
  if (prompt_len < 1 || output_len < 2 || o.requests < 1) {
    return Status::InvalidArgument("bench spec needs --requests >= 1, --prompt-len >= 1 and "
                                   "--output-len >= 2");
  }
  for (int64_t k : o.draft_tokens) {
    if (k < 1) return Status::InvalidArgument("--draft-tokens: " + std::to_string(k) + " is not >= 1");
  }
  for (double a : o.acceptance) {
    if (!(a >= 0 && a <= 1)) {
      return Status::InvalidArgument("--acceptance: " + std::to_string(a) + " is not in [0, 1]");
    }
  }
  const ModelFactory model = ModelArgFactory(o.model, o.load);
  EngineOptions base;
  base.threads = o.threads;
  base.max_num_batched_tokens = std::max<int64_t>(256, o.requests * prompt_len);  // one prefill step
  base.max_num_seqs = std::max<int64_t>(64, o.requests);
  base.max_queued_requests = 1 << 20;
  base.prefix_caching = false;
  base.speculative = SpeculativeMode::kOff;
  // Prompts: random tokens of the model's vocabulary.
  DSV4_ASSIGN_OR_RETURN(std::unique_ptr<runner::LoadedModel> probe, model());
  const int64_t vocab = probe->lm->config().vocab_size;
  const std::string model_name = probe->name;
  probe.reset();
  Rng rng(o.seed);
  std::vector<std::vector<int32_t>> prompts(static_cast<size_t>(o.requests));
  for (auto& p : prompts) {
    p.resize(static_cast<size_t>(prompt_len));
    for (auto& t : p) t = static_cast<int32_t>(rng.Below(static_cast<uint64_t>(vocab)));
  }
  // Round 0 runs without speculation first (its outputs are the references); then every
  // round runs every configuration in turn (alternating, so the load's drift hits them alike),
  // and each reports the median decode tokens/s over the rounds.
  DSV4_ASSIGN_OR_RETURN(SpecRun first_off, RunWorkload(model, base, prompts, output_len));
  std::vector<std::vector<int32_t>> references = prompts;
  for (size_t i = 0; i < references.size(); ++i) {
    references[i].insert(references[i].end(), first_off.outputs[i].begin(),
                         first_off.outputs[i].end());
  }
  std::vector<std::pair<int64_t, double>> configs = {{0, 0.0}};
  for (int64_t k : o.draft_tokens) {
    for (double alpha : o.acceptance) configs.push_back({k, alpha});
  }
  const size_t total = configs.size() * static_cast<size_t>(o.repeats);
  const bool tty = isatty(STDERR_FILENO) != 0;
  const auto t0 = std::chrono::steady_clock::now();
  size_t done = 0;
  std::vector<SpecRun> runs(configs.size());
  std::vector<std::vector<double>> tps(configs.size());
  for (int64_t round = 0; round < o.repeats; ++round) {
    for (size_t c = 0; c < configs.size(); ++c) {
      const auto [k, alpha] = configs[c];
      EngineOptions eo = base;
      if (k > 0) {
        eo.speculative = SpeculativeMode::kAuto;
        eo.draft_tokens = k;
        eo.drafter = [references, alpha, seed = o.seed, k](const runner::LoadedModel& m)
            -> Result<std::unique_ptr<runner::Drafter>> {
          return std::unique_ptr<runner::Drafter>(std::make_unique<runner::ReplayDrafter>(
              references, alpha, seed, k, m.lm->config().vocab_size));
        };
      }
      DSV4_ASSIGN_OR_RETURN(SpecRun r, RunWorkload(model, eo, prompts, output_len));
      for (size_t i = 0; i < prompts.size(); ++i) {
        if (r.outputs[i] != first_off.outputs[i]) {
          return Status::Internal(
              "bench spec: request " + std::to_string(i) + "'s output with k=" +
              std::to_string(k) + ", alpha=" + Fmt(alpha, "%.2f") +
              " differs from the run without speculation (speculative decoding must not "
              "change output)");
        }
      }
      r.k = k;
      r.alpha = alpha;
      tps[c].push_back(r.decode_tps);
      runs[c] = std::move(r);
      ++done;
      if (tty) {
        std::fprintf(stderr, "\rbench spec: %zu/%zu runs, %.0f s   ", done, total,
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        if (done == total) std::fprintf(stderr, "\n");
      }
    }
  }
  for (size_t c = 0; c < configs.size(); ++c) {
    std::sort(tps[c].begin(), tps[c].end());
    runs[c].decode_tps = tps[c][tps[c].size() / 2];
  }
  const SpecRun& off = runs[0];
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!tty) {
    std::fprintf(stderr, "bench spec: %zu runs (%zu configurations x %lld rounds) in %.1f s, "
                 "outputs identical to the run without speculation\n", total + 1, configs.size(),
                 static_cast<long long>(o.repeats), elapsed);
  }
  if (o.json) {
    nlohmann::json j = nlohmann::json::array();
    for (const SpecRun& r : runs) {
      j.push_back({{"model", model_name},
                   {"requests", o.requests},
                   {"prompt_tokens_each", prompt_len},
                   {"output_tokens_each", output_len},
                   {"draft_tokens", r.k},
                   {"alpha", r.alpha},
                   {"acceptance_rate", r.acceptance},
                   {"mean_accepted_length", r.mean_accepted},
                   {"verifications", r.verifications},
                   {"decode_tokens_per_s", r.decode_tps},
                   {"speedup", off.decode_tps > 0 ? r.decode_tps / off.decode_tps : 0.0}});
    }
    std::printf("%s\n", j.dump(2).c_str());
    return Status::Ok();
  }
  std::printf("measured through the engine on %s: %lld requests, %lld prompt + %lld output "
              "tokens each, median of %lld rounds; replay drafter (free to draft: verification "
              "cost only)\n",
              model_name.c_str(), static_cast<long long>(o.requests),
              static_cast<long long>(prompt_len), static_cast<long long>(output_len),
              static_cast<long long>(o.repeats));
  Table t({"k", "alpha", "accept rate", "mean accepted len", "decode tok/s", "speedup"});
  for (const SpecRun& r : runs) {
    t.Row({r.k == 0 ? "off" : std::to_string(r.k), r.k == 0 ? "-" : Fmt(r.alpha, "%.2f"),
           r.k == 0 ? "-" : Fmt(r.acceptance, "%.3f"), r.k == 0 ? "1.00" : Fmt(r.mean_accepted, "%.2f"),
           Fmt(r.decode_tps, "%.1f"), Fmt(off.decode_tps > 0 ? r.decode_tps / off.decode_tps : 0, "%.2fx")});
  }
  std::printf("%s", t.Render().c_str());
  return Status::Ok();
}

}  // namespace

void RegisterBenchSpec(CLI::App& bench, int* exit_code) {
  auto o = std::make_shared<SpecCliOptions>();
  CLI::App* cmd = bench.add_subcommand(
      "spec", "Decode tokens/s vs the acceptance rate, measured through the engine with a "
              "free replay drafter");
  cmd->add_option("--model", o->model, "Checkpoint folder (default: built-in dsv4-tiny)");
  cmd->add_option("--requests", o->requests, "Number of requests")
      ->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--prompt-len", o->prompt_len, "Prompt tokens per request")->capture_default_str();
  cmd->add_option("--output-len", o->output_len, "Generated tokens per request")
      ->capture_default_str();
  cmd->add_option("--draft-tokens", o->draft_tokens, "Draft lengths k (comma-separated)")
      ->delimiter(',')->capture_default_str();
  cmd->add_option("--acceptance", o->acceptance,
                  "Probabilities that a draft is right (comma-separated, in [0, 1])")
      ->delimiter(',')->capture_default_str();
  cmd->add_option("--repeats", o->repeats,
                  "Rounds over every configuration, alternating (the median tokens/s is "
                  "reported; the upper middle one for an even count)")
      ->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--threads", o->threads, "Worker threads (0: all cores)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", o->seed, "Seed of the prompts and of the drafter's coin")
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "Print JSON");
  AddWeightCheckFlag(*cmd, &o->load);
  cmd->callback([o, exit_code] {
    Status s = RunSpec(*o);
    if (!s.ok()) *exit_code = ReportError(s);
  });
}

}  // namespace dsv4::cli
