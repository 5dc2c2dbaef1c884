// dsv4 run: greedy generation from a text or token-id prompt, with prefill and decode speed.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "core/rng.h"
#include "model_arg.h"
#include "token_list.h"
#include "model_session.h"
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
  int64_t chunk = 0;
  bool ignore_eos = false;
  int threads = 0;
};

using Clock = std::chrono::steady_clock;
double Seconds(Clock::time_point a) { return std::chrono::duration<double>(Clock::now() - a).count(); }

// Greedy choice: the highest logit, ties to the lowest id.
int32_t Argmax(const std::vector<float>& logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

// The checkpoint's tokenizer, or FailedPrecondition naming what is missing (text needs it;
// the token-id options do not).
Result<std::unique_ptr<tokenizer::Tokenizer>> TextTokenizer(const ModelSession& s,
                                                            const std::string& model_dir) {
  if (s.checkpoint.tokenizer_json.empty()) {
    return Status::FailedPrecondition(
        "tokenizer.json not found in " + model_dir +
        ": --prompt needs the model's tokenizer; give token ids with --prompt-tokens instead");
  }
  return tokenizer::Tokenizer::FromJson(s.checkpoint.tokenizer_json,
                                        s.checkpoint.name + "/tokenizer.json");
}

// Text as a JSON string literal: one line, newlines and control characters visible.
std::string Quoted(const std::string& text) {
  return nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Status Run(const RunOptions& o) {
  DSV4_ASSIGN_OR_RETURN(ModelSession s, OpenModelSession(o.model, o.threads));
  const checkpoint::ModelConfig& c = s.checkpoint.config;
  std::vector<int32_t> prompt;
  std::unique_ptr<tokenizer::Tokenizer> tok;
  if (!o.prompt.empty()) {
    DSV4_ASSIGN_OR_RETURN(tok, TextTokenizer(s, o.model));
    // DeepSeek's tokenizer config adds BOS to encoded text (the server does the same).
    DSV4_ASSIGN_OR_RETURN(prompt, tok->Encode(o.prompt, {.add_bos = tok->bos_id().has_value()}));
  } else if (o.prompt_random > 0) {
    Rng rng(o.seed);
    for (int64_t i = 0; i < o.prompt_random; ++i) prompt.push_back(static_cast<int32_t>(rng.Below(c.vocab_size)));
  } else if (!o.prompt_tokens.empty()) {
    DSV4_ASSIGN_OR_RETURN(prompt, ParseTokenList(o.prompt_tokens, "--prompt-tokens"));
  } else {
    return Status::InvalidArgument(
        "give a prompt: --prompt TEXT, --prompt-tokens IDS or --prompt-random N");
  }
  std::unique_ptr<runner::SequenceState> seq = s.model->NewSequence();
  std::vector<float> logits;
  const auto t0 = Clock::now();
  const int64_t n = static_cast<int64_t>(prompt.size());
  const int64_t chunk = o.chunk > 0 ? o.chunk : n;
  for (int64_t p = 0; p < n; p += chunk) {
    const int64_t len = std::min(chunk, n - p);
    DSV4_RETURN_IF_ERROR(s.model->Forward(*s.pool, *seq, {prompt.data() + p, static_cast<size_t>(len)},
                                          p + len == n ? runner::LogitsMode::kLast : runner::LogitsMode::kNone,
                                          &logits));
  }
  const double prefill_s = Seconds(t0);
  std::vector<int32_t> out;
  const auto t1 = Clock::now();
  while (static_cast<int64_t>(out.size()) < o.max_new) {
    const int32_t next = Argmax(logits);
    out.push_back(next);
    if (next == c.eos_token_id && !o.ignore_eos) break;
    if (static_cast<int64_t>(out.size()) == o.max_new) break;
    DSV4_RETURN_IF_ERROR(s.model->Forward(*s.pool, *seq, {&next, 1}, runner::LogitsMode::kLast, &logits));
  }
  const double decode_s = Seconds(t1);
  std::printf("model: %s\nprompt: %lld tokens\ngenerated:", s.checkpoint.name.c_str(),
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
  const int64_t steps = std::max<int64_t>(static_cast<int64_t>(out.size()) - 1, 1);
  std::printf("\nprefill: %lld tokens in %.3f s (%.1f tokens/s)\n", static_cast<long long>(n),
              prefill_s, static_cast<double>(n) / prefill_s);
  std::printf("decode: %lld tokens, %.2f ms/token (%.1f tokens/s) at context %lld, %d threads\n",
              static_cast<long long>(out.size() - 1), 1e3 * decode_s / static_cast<double>(steps),
              static_cast<double>(steps) / decode_s, static_cast<long long>(seq->num_tokens()),
              s.pool->num_threads());
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
  cmd->add_option("--chunk", o->chunk, "Prefill in chunks of N tokens")->check(CLI::PositiveNumber);
  cmd->add_flag("--ignore-eos", o->ignore_eos, "Keep generating after the end-of-sequence token");
  cmd->add_option("--threads", o->threads, "Worker threads (0: all cores)")->check(CLI::NonNegativeNumber);
  cmd->callback([o, exit_code] {
    Status s = Run(*o);
    if (!s.ok()) *exit_code = ReportError(s);
  });
}

}  // namespace dsv4::cli
