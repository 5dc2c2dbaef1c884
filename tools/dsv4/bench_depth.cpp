// `dsv4 bench depth`: llama-bench's prompt-processing and generation tests at a given context
// depth (pp512 / tg128 at depths 0, 4K, 32K, 128K by default), through the engine path
// `dsv4 run` uses (prefill in --chunk pieces, greedy decode), so its table reads next to
// llama-bench's for the same weights (README "Against llama.cpp").
//
// Per thread count one engine, prefix caching on with snapshots only at multiples of the
// depths' greatest common divisor. Per depth d, one untimed fill request (d random tokens +
// a test prompt: it computes the depth, leaves its snapshot at d and warms the caches); then
// every repetition of ppN submits the same d tokens followed by N fresh random tokens (a
// different first token each time, so the longest cached prefix is d): the engine restores d
// and prefills N tokens in --chunk pieces; the sample is the time to the first token less the
// restore. tgN submits d + 1 tokens and times the N decode steps after the first token. As
// llama-bench, the depth itself is never timed.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <limits>
#include <numeric>
#include <string>
#include <string_view>
#include <vector>

#include "bench/depth.h"
#include "bench_commands.h"
#include "checkpoint/checkpoint_layout.h"
#include "core/rng.h"
#include "dsv4/engine.h"
#include "model_arg.h"
#include "prefill_flags.h"
#include "runner/loaded_model.h"
#include "testing/weight_generator.h"

namespace dsv4::cli {
namespace {

struct DepthOptions {
  std::string model;
  std::vector<std::string> n_prompt = {"512"};
  std::vector<std::string> n_gen = {"128"};
  std::vector<std::string> n_depth = {"0", "4K", "32K", "128K"};
  std::vector<int> threads = {0};
  int repetitions = 5;
  int64_t chunk = kDefaultPrefillChunk;
  std::string output = "md";
  uint64_t seed = 1;
  checkpoint::LoadOptions load;
};

// The checkpoint (or the built-in model) with its context raised to `context` when shorter:
// positions past the trained context only extrapolate RoPE (YaRN), as llama.cpp does when
// -d + -p exceed n_ctx_train; the weights and the work per token are the same.
ModelFactory WithContext(const std::string& dir, int64_t context, checkpoint::LoadOptions load) {
  return [dir, context, load]() -> Result<std::unique_ptr<runner::LoadedModel>> {
    DSV4_ASSIGN_OR_RETURN(checkpoint::Checkpoint ck, LoadModelArg(dir));
    ck.config.max_position_embeddings = std::max(ck.config.max_position_embeddings, context);
    return runner::LoadCheckpoint(std::move(ck), dir.empty() ? "the built-in model" : dir, load);
  };
}

// The model columns: weights the forward pass reads (drafter tensors excluded, as llama.cpp's
// converter skips them) and logical parameters.
Result<bench::DepthModel> DescribeModel(const std::string& dir) {
  DSV4_ASSIGN_OR_RETURN(checkpoint::Checkpoint ck, LoadModelArg(dir));
  bench::DepthModel m;
  m.filename = dir.empty() ? "dsv4-tiny (built-in)" : dir;
  for (const std::string& n : ck.weights->names()) {
    if (n.rfind("mtp.", 0) == 0) continue;
    DSV4_ASSIGN_OR_RETURN(checkpoint::TensorView v, ck.weights->Get(n));
    m.size_bytes += static_cast<int64_t>(v.bytes.size());
  }
  for (const checkpoint::WeightSpec& w : checkpoint::ListWeights(ck.config, /*include_mtp=*/false)) {
    m.n_params += w.num_params();
  }
  const checkpoint::ModelConfig& c = ck.config;
  m.type = std::string(checkpoint::ArchName(c.arch)) + " " + std::to_string(c.num_hidden_layers) +
           "L " + (c.weight_format == checkpoint::WeightFormat::kFp8 ? "FP8" : "BF16");
  return m;
}

// ParseTokenCounts with 0 allowed (llama-bench's -p 0 / -n 0 / -d 0).
Result<std::vector<int64_t>> ParseCountsOrZero(const std::vector<std::string>& items,
                                               std::string_view flag) {
  std::vector<int64_t> out;
  for (const std::string& s : items) {
    if (s == "0") {
      out.push_back(0);
      continue;
    }
    DSV4_ASSIGN_OR_RETURN(std::vector<int64_t> n, ParseTokenCounts({s}, flag));
    out.push_back(n[0]);
  }
  if (out.empty()) return Status::InvalidArgument(std::string(flag) + ": no values");
  return out;
}

struct Timed {
  double first_s = 0;  // to the first token
  double last_s = 0;   // to the last
};

Result<Timed> RunRequest(Engine& e, std::vector<int32_t> prompt, int64_t max_new) {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.stop.max_new_tokens = max_new;
  r.stop.ignore_eos = true;
  r.speculative = false;
  DSV4_ASSIGN_OR_RETURN(std::shared_ptr<RequestStream> s, e.Submit(std::move(r)));
  TokenEvent ev;
  Timed t;
  int64_t n = 0;
  while (s->Next(&ev)) {
    if (ev.finished) {
      if (ev.reason == FinishReason::kError) return Status::Internal(ev.error);
      if (ev.reason == FinishReason::kCancelled) return Status::Internal("the engine stopped");
      break;
    }
    if (n++ == 0) t.first_s = ev.seconds;
    t.last_s = ev.seconds;
  }
  if (n != max_new) {
    return Status::Internal("a benchmark request produced " + std::to_string(n) + " of " +
                            std::to_string(max_new) + " tokens");
  }
  return t;
}

// Progress on a terminal: one rewritten line.
class Progress {
 public:
  explicit Progress(size_t total) : total_(total), tty_(::isatty(STDERR_FILENO) != 0) {}
  void Show(size_t done, const std::string& what) const {
    if (tty_) std::fprintf(stderr, "\r\033[K[%zu/%zu] %s", done, total_, what.c_str());
  }
  void Done() const {
    if (tty_) std::fprintf(stderr, "\r\033[K");
  }

 private:
  size_t total_;
  bool tty_;
};

Status RunBenchDepth(const DepthOptions& o) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point t0 = Clock::now();
  DSV4_ASSIGN_OR_RETURN(std::vector<int64_t> pp, ParseCountsOrZero(o.n_prompt, "-p"));
  DSV4_ASSIGN_OR_RETURN(std::vector<int64_t> tg, ParseCountsOrZero(o.n_gen, "-n"));
  DSV4_ASSIGN_OR_RETURN(std::vector<int64_t> depths, ParseCountsOrZero(o.n_depth, "-d"));
  for (int64_t d : depths) {
    if (d < 0 || d % 128 != 0) {
      return Status::InvalidArgument(
          "-d: each depth must be 0 or a positive multiple of 128 (the prefix cache's "
          "granule), got " + std::to_string(d));
    }
  }
  for (int64_t n : pp) {
    if (n < 0) return Status::InvalidArgument("-p: prompt lengths must be >= 0, got " + std::to_string(n));
  }
  for (int64_t n : tg) {
    if (n < 0) return Status::InvalidArgument("-n: generation lengths must be >= 0, got " + std::to_string(n));
  }
  for (int t : o.threads) {
    if (t < 0) return Status::InvalidArgument("-t: thread counts must be >= 0, got " + std::to_string(t));
  }
  const std::vector<bench::DepthTest> tests = bench::ExpandDepthTests(pp, tg, depths, o.threads);
  if (tests.empty()) return Status::InvalidArgument("-p and -n are all 0: no test to run");
  DSV4_ASSIGN_OR_RETURN(bench::DepthModel model, DescribeModel(o.model));

  int64_t longest = 0, interval = 0;
  for (const bench::DepthTest& t : tests) {
    longest = std::max(longest, t.n_depth + t.n_prompt + t.n_gen + 2);
    if (t.n_depth > 0) interval = std::gcd(interval, t.n_depth);
  }
  EngineOptions eo;
  eo.kv_budget_bytes = std::numeric_limits<int64_t>::max() / 4;
  eo.max_num_batched_tokens = o.chunk > 0 ? o.chunk : std::numeric_limits<int64_t>::max() / 4;
  eo.max_num_seqs = 1;
  eo.prefix_caching = true;
  eo.prefix_snapshot_interval = interval > 0 ? interval : 4096;
  eo.prefix_snapshot_prompt_end = false;
  eo.speculative = SpeculativeMode::kOff;
  const ModelFactory factory = WithContext(o.model, longest, o.load);

  std::vector<bench::DepthResult> results;
  const Progress progress(tests.size() * static_cast<size_t>(o.repetitions));
  size_t done = 0;
  double fill_s = 0;
  for (size_t i = 0; i < tests.size();) {
    eo.threads = tests[i].threads;
    DSV4_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine, Engine::Create(factory, eo));
    const int64_t vocab = engine->vocab_size();
    Rng rng(o.seed);
    // The depth tokens: one random stream, its first d tokens for depth d.
    int64_t max_depth = 0;
    for (const bench::DepthTest& t : tests) max_depth = std::max(max_depth, t.n_depth);
    std::vector<int32_t> stream;
    for (int64_t k = 0; k < max_depth; ++k) stream.push_back(static_cast<int32_t>(rng.Below(vocab)));
    int32_t first = 0;  // first tokens of the tails cycle through the vocabulary
    auto tail = [&](int64_t n) {
      std::vector<int32_t> v;
      v.push_back(first);
      first = static_cast<int32_t>((first + 1) % vocab);
      for (int64_t k = 1; k < n; ++k) v.push_back(static_cast<int32_t>(rng.Below(vocab)));
      return v;
    };
    int64_t filled_depth = -1;
    for (; i < tests.size() && tests[i].threads == eo.threads; ++i) {
      const bench::DepthTest& t = tests[i];
      std::vector<int32_t> depth(stream.begin(), stream.begin() + t.n_depth);
      if (filled_depth != t.n_depth) {
        // Untimed: computes the depth (snapshot at d) and warms up.
        progress.Show(done, "filling depth " + std::to_string(t.n_depth));
        std::vector<int32_t> p = depth;
        const std::vector<int32_t> w = tail(std::max<int64_t>(t.n_prompt, 1));
        p.insert(p.end(), w.begin(), w.end());
        const Clock::time_point f0 = Clock::now();
        DSV4_RETURN_IF_ERROR(RunRequest(*engine, std::move(p), 2).status());
        fill_s += std::chrono::duration<double>(Clock::now() - f0).count();
        filled_depth = t.n_depth;
      }
      bench::DepthResult r{.test = t, .seconds = {}};
      for (int rep = 0; rep < o.repetitions; ++rep) {
        progress.Show(done++, bench::DepthTestName(t) + " (" + std::to_string(rep + 1) + "/" +
                                  std::to_string(o.repetitions) + ")");
        std::vector<int32_t> p = depth;
        const std::vector<int32_t> w = tail(t.n_prompt > 0 ? t.n_prompt : 1);
        p.insert(p.end(), w.begin(), w.end());
        const EngineStats before = engine->Stats();
        DSV4_ASSIGN_OR_RETURN(Timed tm, RunRequest(*engine, std::move(p),
                                                   t.n_prompt > 0 ? 1 : t.n_gen + 1));
        const EngineStats after = engine->Stats();
        if (t.n_depth > 0 && after.prefix_hit_tokens - before.prefix_hit_tokens != t.n_depth) {
          return Status::Internal("the depth " + std::to_string(t.n_depth) +
                                  " was not restored from the prefix cache (restored " +
                                  std::to_string(after.prefix_hit_tokens - before.prefix_hit_tokens) +
                                  " tokens)");
        }
        const double restore_s = after.prefix_ram_restore_seconds - before.prefix_ram_restore_seconds;
        r.seconds.push_back(t.n_prompt > 0 ? tm.first_s - restore_s : tm.last_s - tm.first_s);
      }
      r.test.threads = engine->num_threads();
      results.push_back(std::move(r));
    }
  }
  progress.Done();
  const double total_s = std::chrono::duration<double>(Clock::now() - t0).count();
  if (o.output == "json") {
    std::printf("%s\n", bench::DepthJson(model, eo.max_num_batched_tokens, results).dump(2).c_str());
  } else {
    std::printf("%s", bench::DepthMarkdown(model, results).c_str());
  }
  std::fflush(stdout);
  std::fprintf(stderr, "bench depth: %zu tests x %d repetitions in %.1f s (untimed depth fills %.1f s), "
               "prefill chunk %s, model %s\n",
               results.size(), o.repetitions, total_s, fill_s,
               o.chunk > 0 ? std::to_string(o.chunk).c_str() : "all", model.filename.c_str());
  return Status::Ok();
}

}  // namespace

void RegisterBenchDepth(CLI::App& bench, int* exit_code) {
  auto o = std::make_shared<DepthOptions>();
  CLI::App* cmd = bench.add_subcommand(
      "depth", "llama-bench's pp/tg tests at context depths (pp512, tg128 at 0, 4K, 32K, 128K)");
  cmd->add_option("-m,--model", o->model, "Checkpoint folder (default: built-in dsv4-tiny)");
  cmd->add_option("-p,--n-prompt", o->n_prompt, "Prompt lengths of the pp tests (0: none)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("-n,--n-gen", o->n_gen, "Generated tokens of the tg tests (0: none)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("-d,--n-depth", o->n_depth,
                  "Context depths: 0 or multiples of 128, e.g. 0,4K,32K,128K")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("-t,--threads", o->threads, "Thread counts (0: all cores)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("-r,--repetitions", o->repetitions, "Repetitions of each test")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  AddPrefillChunkOption(*cmd, &o->chunk);
  cmd->add_option("-o,--output", o->output, "Output format: md (llama-bench's table) or json")
      ->check(CLI::IsMember({"md", "json"}))
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "Seed of the random tokens")->capture_default_str();
  AddWeightCheckFlag(*cmd, &o->load);
  cmd->callback([o, exit_code] {
    Status s = RunBenchDepth(*o);
    if (!s.ok()) *exit_code = ReportError(s);
  });
}

}  // namespace dsv4::cli
