// dsv4 logits: FP32 logits after every position of a token sequence, as a .npy file, fed as
// a prefill (optionally chunked) followed by single-token decode steps.
#include <chrono>
#include <cstdio>
#include <string>

#include "commands.h"
#include "expert_parallel_flags.h"
#include "core/process_memory.h"
#include "model_arg.h"
#include "prefill_flags.h"
#include "npy.h"
#include "token_list.h"
#include "model_session.h"

namespace dsv4::cli {
namespace {

struct LogitsOptions {
  std::string model;
  std::string tokens;
  std::string out;
  int64_t decode_from = -1;  // prefill this many tokens, then decode the rest one at a time
  int64_t chunk = kDefaultPrefillChunk;  // prefill chunk size (0: one shot)
  int threads = 0;
  checkpoint::LoadOptions load;
  EpFlags ep;
};

Status Logits(const LogitsOptions& o) {
  DSV4_ASSIGN_OR_RETURN(checkpoint::Checkpoint ck, LoadModelArg(o.model));
  checkpoint::LoadOptions load = o.load;
  // Declared first: destroyed last, after the model (rank 0 then ends the others' steps).
  DSV4_ASSIGN_OR_RETURN(std::unique_ptr<EpSession> ep, EpSession::Start(o.ep, ck, false, &load));
  if (!ep->leads()) return ep->Follow(std::move(ck), o.threads, load, false);
  DSV4_ASSIGN_OR_RETURN(std::vector<int32_t> tokens, ReadTokenFile(o.tokens));
  const int64_t n = static_cast<int64_t>(tokens.size());
  const int64_t prefill = o.decode_from < 0 ? n : o.decode_from;
  if (prefill > n) {
    return Status::InvalidArgument("--decode-from " + std::to_string(prefill) + " is past the " +
                                   std::to_string(n) + " tokens of " + o.tokens);
  }
  DSV4_ASSIGN_OR_RETURN(ModelSession s, OpenModelSession(std::move(ck), o.threads, load));
  const int64_t vocab = s.checkpoint.config.vocab_size;
  const int64_t context = s.checkpoint.config.max_position_embeddings;
  if (n > context) {
    return Status::InvalidArgument(o.tokens + ": " + std::to_string(n) + " tokens, more than " +
                                   "the model's context of " + std::to_string(context));
  }
  std::unique_ptr<runner::SequenceState> seq = s.model->NewSequence();
  // Rows go to the file as they come: [n, vocab] at real sizes is more than memory holds.
  DSV4_ASSIGN_OR_RETURN(std::unique_ptr<NpyF32Writer> out, NpyF32Writer::Create(o.out, {n, vocab}));
  std::vector<float> part;
  const auto start = std::chrono::steady_clock::now();
  const int64_t chunk = o.chunk > 0 ? o.chunk : std::max<int64_t>(prefill, 1);
  for (int64_t p = 0; p < n;) {
    const int64_t len = p < prefill ? std::min(chunk, prefill - p) : 1;
    DSV4_RETURN_IF_ERROR(s.model->Forward(*s.pool, *seq, {tokens.data() + p, static_cast<size_t>(len)},
                                          runner::LogitsMode::kAll, &part));
    DSV4_RETURN_IF_ERROR(out->Append(part.data(), static_cast<int64_t>(part.size())));
    p += len;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  DSV4_RETURN_IF_ERROR(out->Finish());
  std::printf("wrote %s: float32 [%lld, %lld] (prefill %lld tokens in chunks of %lld, decode %lld) "
              "in %.2f s, peak memory %.1f MiB resident\n", o.out.c_str(), static_cast<long long>(n), static_cast<long long>(vocab),
              static_cast<long long>(prefill), static_cast<long long>(std::min(chunk, prefill)),
              static_cast<long long>(n - prefill), secs,
              static_cast<double>(PeakRssBytes()) / (1 << 20));
  ep->PrintCounters();
  return Status::Ok();
}

}  // namespace

void RegisterLogits(CLI::App& app, int* exit_code) {
  auto o = std::make_shared<LogitsOptions>();
  CLI::App* cmd = app.add_subcommand("logits", "Write the logits after every position as .npy");
  cmd->add_option("--model", o->model, "Checkpoint folder (default: built-in dsv4-tiny)");
  cmd->add_option("--tokens", o->tokens, "File of token ids (commas or whitespace)")->required();
  cmd->add_option("--out", o->out, "Output .npy file: float32 [tokens, vocab]")->required();
  cmd->add_option("--decode-from", o->decode_from,
                  "Prefill the first P tokens, then feed the rest one at a time")
      ->check(CLI::NonNegativeNumber);
  AddPrefillChunkOption(*cmd, &o->chunk);
  cmd->add_option("--threads", o->threads, "Worker threads (0: all cores)")->check(CLI::NonNegativeNumber);
  AddWeightCheckFlag(*cmd, &o->load);
  AddEpFlags(*cmd, &o->ep);
  cmd->callback([o, exit_code] {
    Status s = Logits(*o);
    if (!s.ok()) *exit_code = ReportError(s);
  });
}

}  // namespace dsv4::cli
