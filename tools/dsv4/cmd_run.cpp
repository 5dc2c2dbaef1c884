// dsv4 run: greedy generation from a text or token-id prompt, with prefill and decode speed,
// as one request through the Engine (its checks, its stop conditions, its generation loop).
#include <algorithm>
#include <cstdio>
#include <limits>
#include <string>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "expert_parallel_flags.h"
#include "core/process_memory.h"
#include "core/rng.h"
#include "dsv4/engine.h"
#include "checkpoint/config.h"
#include "kv_cache_flags.h"
#include "model_arg.h"
#include "prefill_flags.h"
#include "speculative_flags.h"
#include "token_list.h"
#include "tokenizer/tokenizer.h"

namespace dsv4::cli {
namespace {

struct RunOptions {
  std::string model;
  std::string prompt;  // text, encoded with the model's tokenizer
  std::string prompt_tokens;
  int64_t prompt_random = 0;  // a random prompt of this many tokens instead (benchmarking)
  uint64_t seed = 1;
  int64_t max_new = 16;
  int64_t chunk = kDefaultPrefillChunk;  // 0: the whole prompt in one step
  bool ignore_eos = false;
  int threads = 0;
  KvCacheDiskFlags kv_cache;
  SpeculativeFlags speculative;
  checkpoint::LoadOptions load;
  EpFlags ep;
};

// The model's tokenizer, or FailedPrecondition naming what is missing (text needs it; the
// token-id options do not).
Result<const tokenizer::Tokenizer*> TextTokenizer(const Engine& engine) {
  Result<const tokenizer::Tokenizer*> tok = engine.tokenizer();
  if (!tok.ok() && tok.status().code() == StatusCode::kFailedPrecondition) {
    return Status::FailedPrecondition(
        tok.status().message() +
        ": --prompt needs the model's tokenizer; give token ids with --prompt-tokens instead");
  }
  return tok;
}

// Text as a JSON string literal: one line, newlines and control characters visible.
std::string Quoted(const std::string& text) {
  return nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// The engine for one request at a time: prefill in --chunk pieces (0: the whole prompt in
// one step, whose activations grow with the prompt), no prefix snapshots (nothing to share within one run) unless --kv-cache-dir
// keeps them for the next run, and no KV budget beyond the machine's memory (pages are
// allocated as the sequence grows), as a plain generation loop would run.
Result<EngineOptions> RunEngineOptions(const RunOptions& o) {
  EngineOptions eo;
  eo.threads = o.threads;
  eo.kv_budget_bytes = std::numeric_limits<int64_t>::max() / 4;
  eo.max_num_batched_tokens = o.chunk > 0 ? o.chunk : std::numeric_limits<int64_t>::max() / 4;
  eo.max_num_seqs = 1;
  eo.max_queued_requests = 1;
  eo.prefix_caching = !o.kv_cache.dir.empty();
  DSV4_RETURN_IF_ERROR(ApplyKvCacheDiskFlags(o.kv_cache, &eo));
  ApplySpeculativeFlags(o.speculative, &eo);
  return eo;
}

// What one request's token events say: the tokens, and when the first and last came.
struct Generated {
  std::vector<int32_t> tokens;
  double first_s = 0;  // since submission: the prefill (and the first token's sampling)
  double last_s = 0;
};

Result<Generated> Generate(Engine& engine, GenerationRequest request) {
  DSV4_ASSIGN_OR_RETURN(std::shared_ptr<RequestStream> stream, engine.Submit(std::move(request)));
  Generated g;
  TokenEvent ev;
  while (stream->Next(&ev)) {
    if (ev.finished) {
      if (ev.reason == FinishReason::kError) return Status::Internal(ev.error);
      if (ev.reason == FinishReason::kCancelled) return Status::Internal("the engine stopped");
      break;
    }
    if (g.tokens.empty()) g.first_s = ev.seconds;
    g.last_s = ev.seconds;
    g.tokens.push_back(ev.token);
  }
  return g;
}

Status Run(const RunOptions& o) {
  if (o.prompt.empty() && o.prompt_random == 0 && o.prompt_tokens.empty()) {
    return Status::InvalidArgument(
        "give a prompt: --prompt TEXT, --prompt-tokens IDS or --prompt-random N");
  }
  DSV4_ASSIGN_OR_RETURN(const EngineOptions eo, RunEngineOptions(o));
  DSV4_ASSIGN_OR_RETURN(checkpoint::Checkpoint ck, LoadModelArg(o.model));
  checkpoint::LoadOptions load = o.load;
  // Declared before the engine: destroyed after it (rank 0 then ends the others' steps).
  DSV4_ASSIGN_OR_RETURN(std::unique_ptr<EpSession> ep,
                        EpSession::Start(o.ep, ck, ck.drafter != checkpoint::DraftFamily::kNone,
                                         &load));
  if (!ep->leads()) return ep->Follow(std::move(ck), o.threads, load, true);
  ck = {};  // the engine opens its own
  DSV4_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine,
                        Engine::Create(ModelArgFactory(o.model, load), eo));
  const checkpoint::ModelConfig& c = engine->config();
  std::vector<int32_t> prompt;
  const tokenizer::Tokenizer* tok = nullptr;
  if (!o.prompt.empty()) {
    DSV4_ASSIGN_OR_RETURN(tok, TextTokenizer(*engine));
    // DeepSeek's tokenizer config adds BOS to encoded text (the server does the same). The
    // prompt is raw model input, so control tokens spelled in it are matched, as in the
    // server's /v1/completions.
    DSV4_ASSIGN_OR_RETURN(prompt, tok->Encode(o.prompt, {.add_bos = tok->bos_id().has_value(),
                                                         .parse_special = true}));
  } else if (o.prompt_random > 0) {
    Rng rng(o.seed);
    for (int64_t i = 0; i < o.prompt_random; ++i) prompt.push_back(static_cast<int32_t>(rng.Below(c.vocab_size)));
  } else {
    DSV4_ASSIGN_OR_RETURN(prompt, ParseTokenList(o.prompt_tokens, "--prompt-tokens"));
  }
  const int64_t n = static_cast<int64_t>(prompt.size());
  GenerationRequest request;
  request.prompt = std::move(prompt);  // greedy: SamplingParams{} has temperature 0
  request.stop.max_new_tokens = o.max_new;
  request.stop.ignore_eos = o.ignore_eos;
  DSV4_ASSIGN_OR_RETURN(Generated g, Generate(*engine, std::move(request)));
  const std::vector<int32_t>& out = g.tokens;
  std::printf("model: %s\nprompt: %lld tokens\ngenerated:", engine->model_name().c_str(),
              static_cast<long long>(n));
  for (int32_t t : out) std::printf(" %d", t);
  if (tok) {
    // The EOS token ends the text; its string is not part of it.
    std::vector<int32_t> text_ids = out;
    if (!text_ids.empty() && text_ids.back() == c.eos_token_id) text_ids.pop_back();
    DSV4_ASSIGN_OR_RETURN(std::string text, tok->DecodeText(text_ids));
    std::printf("\nprompt text: %s\ncompletion: %s", Quoted(o.prompt).c_str(),
                Quoted(text).c_str());
  }
  const double prefill_s = g.first_s;
  const double decode_s = g.last_s - g.first_s;
  const int64_t decoded = static_cast<int64_t>(out.size()) - 1;  // tokens fed back
  const int64_t steps = std::max<int64_t>(decoded, 1);
  std::printf("\nprefill: %lld tokens in %.3f s (%.1f tokens/s)\n", static_cast<long long>(n),
              prefill_s, static_cast<double>(n) / prefill_s);
  std::printf("decode: %lld tokens, %.2f ms/token (%.1f tokens/s) at context %lld, %d threads\n",
              static_cast<long long>(decoded), 1e3 * decode_s / static_cast<double>(steps),
              decode_s > 0 ? static_cast<double>(steps) / decode_s : 0.0,
              static_cast<long long>(n + decoded), engine->num_threads());
  std::printf("%s\n", SpeculativeReport(*engine, engine->Stats()).c_str());
  std::printf("peak memory: %.1f MiB resident (prefill chunks of %s tokens)\n",
              static_cast<double>(PeakRssBytes()) / (1 << 20),
              o.chunk > 0 ? std::to_string(o.chunk).c_str() : "all");
  engine.reset();  // its thread makes no more MPI calls past here
  ep->PrintCounters();
  return Status::Ok();
}

}  // namespace

void RegisterRun(CLI::App& app, int* exit_code) {
  auto o = std::make_shared<RunOptions>();
  CLI::App* cmd = app.add_subcommand("run", "Greedy generation from text or token ids, with speed");
  cmd->add_option("--model", o->model, "Checkpoint folder (default: built-in dsv4-tiny)");
  auto* text = cmd->add_option("--prompt", o->prompt,
                               "Prompt text (needs the model's tokenizer.json); prints the text");
  auto* pt = cmd->add_option("--prompt-tokens", o->prompt_tokens, "Prompt token ids, e.g. 1,2,3")
                 ->excludes(text);
  cmd->add_option("--prompt-random", o->prompt_random,
                  "Use a random prompt of N tokens (for speed measurements)")
      ->check(CLI::PositiveNumber)
      ->excludes(pt)
      ->excludes(text);
  cmd->add_option("--seed", o->seed, "Seed of --prompt-random")->capture_default_str();
  cmd->add_option("-n,--max-new-tokens", o->max_new, "Tokens to generate")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  AddPrefillChunkOption(*cmd, &o->chunk);
  cmd->add_flag("--ignore-eos", o->ignore_eos, "Keep generating after the end-of-sequence token");
  cmd->add_option("--threads", o->threads, "Worker threads (0: all cores)")->check(CLI::NonNegativeNumber);
  AddKvCacheDiskFlags(*cmd, &o->kv_cache);
  AddSpeculativeFlags(*cmd, &o->speculative);
  AddWeightCheckFlag(*cmd, &o->load);
  AddEpFlags(*cmd, &o->ep);
  cmd->callback([o, exit_code] {
    Status s = Run(*o);
    if (!s.ok()) *exit_code = ReportError(s);
  });
}

}  // namespace dsv4::cli
