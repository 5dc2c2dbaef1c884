// The serving engine: continuous batching of many generation requests over one model, with a
// paged, budgeted KV cache. One engine thread owns every piece of serving state (scheduler,
// KV pages, model runner); other threads only submit, cancel and read events.
//
// The engine is the one owner of what a request may ask (Check: vocabulary, context, KV
// budget) and of when it ends (StopConditions: EOS, stop ids, max_new_tokens). Callers map
// its refusals onto their protocol (the server to OpenAI errors, the CLI to a message).
//
// Thread safety: every public method may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dsv4/kv_stats.h"
#include "dsv4/sampling.h"
#include "dsv4/status.h"

namespace dsv4 {

// Library types the engine hands out by reference; their definitions are internal
// (src/model, src/tokenizer, src/runner), so only code built with the library uses them.
namespace checkpoint {
struct ModelConfig;
}
namespace tokenizer {
class Tokenizer;
}
namespace runner {
struct LoadedModel;
class Drafter;
}
namespace dist {
class ExpertParallel;
}

using RequestId = int64_t;

// When a request ends, besides cancellation (checked by the engine alone, after every token).
struct StopConditions {
  int64_t max_new_tokens = 16;
  bool ignore_eos = false;              // also ignores stop_token_ids
  std::vector<int32_t> stop_token_ids;  // besides the model's eos (unless ignore_eos)
};

struct GenerationRequest {
  std::vector<int32_t> prompt;  // token ids, at least one
  SamplingParams sampling;
  StopConditions stop;
  // false: this request never drafts, even on an engine with speculative decoding (its
  // output is the same either way; only its speed differs).
  bool speculative = true;
};

// Why a request can never run on this engine, whatever the load (Engine::Check; Submit
// refuses such a request with the same Status).
enum class RequestProblem {
  kNone,
  kMalformed,         // InvalidArgument: empty prompt, a token outside the vocabulary,
                      // max_new_tokens < 1, sampling values out of range
  kPromptTooLong,     // OutOfRange: the prompt alone fills the context (no room for a token)
  kContextExceeded,   // OutOfRange: prompt + max_new_tokens exceed the context
  kKvBudgetExceeded,  // OutOfRange: alone, the request needs more KV than the whole budget
};

struct RequestCheck {
  RequestProblem problem = RequestProblem::kNone;
  Status status;  // OK iff problem == kNone; else names the limit, the asked and the allowed
  bool ok() const { return problem == RequestProblem::kNone; }
};

enum class FinishReason { kNone, kLength, kStop, kCancelled, kError };
const char* FinishReasonName(FinishReason r);

// One generated token, or the end of the stream (finished == true; token may be -1 then).
struct TokenEvent {
  int32_t token = -1;
  int64_t index = 0;  // 0 for the first generated token
  bool finished = false;
  FinishReason reason = FinishReason::kNone;
  std::string error;  // when reason == kError
  double seconds = 0; // since the request was submitted (the first token's: prefill + queueing)
};

// The events of one request, in order. Filled by the engine thread; read by anyone.
class RequestStream {
 public:
  explicit RequestStream(RequestId id) : id_(id) {}
  RequestId id() const { return id_; }
  // Blocks until the next event; false once the final event has been read.
  bool Next(TokenEvent* ev);
  // Like Next but gives up after `timeout` (false with *ev untouched).
  bool NextFor(TokenEvent* ev, std::chrono::milliseconds timeout, bool* timed_out);

  // Engine side.
  void Push(TokenEvent ev);

 private:
  RequestId id_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<TokenEvent> events_;
  bool done_ = false;  // the final event has been read
};

// Makes the model an engine serves; Engine::Create calls it once, on the caller's thread,
// and owns what it returns. Where the model comes from is the caller's choice: a checkpoint
// folder (runner::OpenModelFolder), the built-in tiny model (the dsv4 tool), a stand-in that
// only accounts KV pages for admission studies (runner::AccountingModel).
using ModelFactory = std::function<Result<std::unique_ptr<runner::LoadedModel>>()>;

// Speculative decoding: which drafter proposes the tokens a step verifies.
enum class SpeculativeMode {
  kAuto,    // the checkpoint's drafter when it has one this build can run, else off; paused
            // per request while it does not pay (EngineOptions::speculative_step_cost)
  kOff,
  kMtp,     // the April MTP module: an error when the checkpoint has none
  kDspark,  // DSpark's draft blocks (0731 / 0813): an error when the checkpoint has none
};
const char* SpeculativeModeName(SpeculativeMode m);  // "auto", "off", "mtp", "dspark"

// Makes the drafter of an engine from its model (called once by Engine::Create, after the
// model factory). The engine owns what it returns.
using DrafterFactory =
    std::function<Result<std::unique_ptr<runner::Drafter>>(const runner::LoadedModel&)>;

struct EngineOptions {
  int threads = 0;                     // 0: all cores
  int64_t kv_budget_bytes = 1ll << 30; // pages of all sequences together
  int64_t max_num_batched_tokens = 256;
  int64_t max_num_seqs = 64;
  int64_t max_queued_requests = 1024;  // Submit beyond this: ResourceExhausted
  // Prefix caching: prompts are snapshotted at every multiple of `prefix_snapshot_interval`
  // tokens (a multiple of 128) and at their last multiple of 128; a later request whose
  // prompt starts with a cached prefix continues from it instead of recomputing it, with
  // bit-identical results. Cached prefixes are evicted LRU when the KV budget needs pages.
  // Only for models whose sequences can be snapshotted (V4); off for the others.
  // A request that ends also leaves its prompt + output cached at the last multiple of 128
  // whose KV it computed, so the next turn of a conversation re-prefills only its new tail.
  bool prefix_caching = true;
  int64_t prefix_snapshot_interval = 4096;
  // false: only the multiples of the interval (no stop at the prompt's last multiple of 128,
  // so a prompt's tail after a cached prefix is prefilled in max_num_batched_tokens pieces
  // alone: `dsv4 bench depth` times ppN after a cached depth this way).
  bool prefix_snapshot_prompt_end = true;
  // Disk tier of the prefix cache: with a folder, entries evicted from RAM are written there
  // (one checked file per prefix, kv/snapshot_file.h) instead of dropped, up to
  // `kv_cache_disk_budget_bytes` (least recently used files deleted first), restored
  // bit-identically on a hit, written out at shutdown and found again by the next engine of
  // the same model. A folder that cannot be written, or a bad file, is warned about once
  // (through `on_warning`) and never fails a request.
  std::string kv_cache_dir;
  int64_t kv_cache_disk_budget_bytes = int64_t{8} << 30;
  // Receives warnings (one line each); empty: "warning: ..." on stderr.
  std::function<void(const std::string&)> on_warning;
  // Speculative decoding (README "Speculative decoding"): each decoding sequence's drafter
  // proposes up to `draft_tokens` tokens (0: as many as the drafter proposes at most), which
  // the next step verifies together with the sequence's last token. Greedy and sampled
  // outputs are bit-identical to decoding without it. Needs a model whose sequences can roll
  // back (V4, V3.2).
  SpeculativeMode speculative = SpeculativeMode::kAuto;
  int64_t draft_tokens = 0;
  // When set (and `speculative` is not kOff), makes the drafter instead of the checkpoint's
  // (tests: oracle drafters).
  DrafterFactory drafter;
  // kAuto switches drafting off per request while it does not pay (README "Speculative
  // decoding": acceptance per verification against what a verify step costs) and probes
  // again with exponential back-off; kMtp / kDspark always draft, and so does a `drafter`
  // factory unless `speculative_step_cost` is set too. The cost model: what a decode step
  // that verifies k drafts costs, drafting included, in one-token decode steps (> 0; tests
  // inject one so that no decision depends on the clock). Empty: measured by the engine
  // (the wall time of its pure decode steps).
  std::function<double(int64_t k)> speculative_step_cost;
  // Data-parallel serving across expert-parallel ranks (engine/data_parallel.h): the model's
  // own dist::ExpertParallel (LoadOptions::expert_parallel). On rank 0 the engine takes every
  // request and places it on a rank; on the other ranks it runs what rank 0 places there and
  // takes no Submit (WaitUntilReleased). Null: one process.
  std::shared_ptr<dist::ExpertParallel> data_parallel;
};

// One rank's part in data-parallel serving (EngineStats::ranks), as of its last step.
struct EngineRankStats {
  int rank = 0;
  int64_t placed = 0;          // requests rank 0 placed on it
  int64_t running = 0;
  int64_t waiting = 0;
  int64_t finished = 0;
  int64_t steps = 0;           // engine steps with rows of its own
  int64_t joined_steps = 0;    // steps it joined with zero rows
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
  int64_t kv_used_bytes = 0;
  int64_t kv_sequence_bytes = 0;  // what its sequences hold at their lengths (its load)
  int64_t exchange_bytes_sent = 0;      // MoE rows to other ranks
  int64_t exchange_bytes_received = 0;
  double exchange_seconds = 0;          // inside the all-to-alls
};

struct EngineStats {
  int64_t running = 0;
  int64_t waiting = 0;
  int64_t finished = 0;
  int64_t preemptions = 0;
  int64_t steps = 0;
  int64_t prompt_tokens = 0;     // prompt tokens computed (recomputation included)
  int64_t generated_tokens = 0;
  int64_t max_running = 0;       // peak concurrency
  int64_t prefix_hits = 0;       // requests (or recomputations) that reused a cached prefix
  int64_t prefix_hit_tokens = 0; // prompt tokens not recomputed thanks to them
  int64_t prefix_cache_entries = 0;   // RAM tier entries
  // Per tier: hits (requests restored from it), prompt tokens they restored, the time spent
  // restoring (summed; disk: read, check and copy into pages).
  int64_t prefix_ram_hits = 0;
  int64_t prefix_ram_hit_tokens = 0;
  double prefix_ram_restore_seconds = 0;
  int64_t prefix_ram_bytes = 0;       // pages the RAM entries own alone (rings, CSA state)
  // Heap bytes the RAM entries keep of their drafter's state (speculative decoding; the disk
  // tier's files hold it too, counted in prefix_disk_bytes).
  int64_t prefix_ram_draft_bytes = 0;
  int64_t prefix_turn_snapshots = 0;  // finished turns cached (prompt + output)
  int64_t prefix_disk_hits = 0;
  int64_t prefix_disk_hit_tokens = 0;
  double prefix_disk_restore_seconds = 0;
  bool prefix_disk_storing = false;   // a disk tier that still writes
  int64_t prefix_disk_entries = 0;
  int64_t prefix_disk_bytes = 0;      // file bytes held now
  int64_t prefix_disk_writes = 0;
  int64_t prefix_disk_written_bytes = 0;
  int64_t prefix_disk_read_bytes = 0;
  int64_t prefix_disk_evicted = 0;    // files deleted to stay within the disk budget
  int64_t prefix_disk_rejected_files = 0;  // truncated, corrupt, foreign or old files skipped
  // Speculative decoding. A verification is one sequence's step that fed >= 1 draft; it
  // accepts the longest prefix of its drafts the target agrees with (stop conditions may
  // then emit fewer). Per draft position i (0: the first draft after the last token):
  // verified and accepted drafts, [draft_tokens] each (empty when off).
  int64_t spec_verifications = 0;
  int64_t spec_draft_tokens = 0;     // drafts verified
  int64_t spec_accepted_tokens = 0;  // drafts accepted
  std::vector<int64_t> spec_drafted_at;
  std::vector<int64_t> spec_accepted_at;
  // Requests that continued from a cached prefix with their drafter's state restored from it
  // (drafting from their first step), and those whose entry had none or a state that did not
  // restore (a drafter that needs the target's hidden rows then does not draft for them).
  int64_t spec_restored_states = 0;
  int64_t spec_unrestored_states = 0;
  // Auto mode's switch-off: times a request's drafting was paused because it did not pay,
  // requests paused at least once, requests paused now.
  int64_t spec_paused = 0;
  int64_t spec_paused_requests = 0;
  int64_t spec_paused_now = 0;
  // Accepted / verified drafts (0 before any).
  double spec_acceptance_rate() const;
  // Tokens a verification emits on average: 1 (the target's own) + accepted drafts.
  double spec_mean_accepted_length() const;
  KvStats kv;                    // budget_bytes set from the start
  // Data-parallel serving, on rank 0: every rank's (empty otherwise). The fields above are
  // rank 0's own engine's, except finished, which counts every rank's requests.
  std::vector<EngineRankStats> ranks;
};

class Engine {
 public:
  // Makes the model with `make_model` (its errors are returned as they are), checks the
  // options (InvalidArgument naming the option) and starts the engine thread.
  static Result<std::unique_ptr<Engine>> Create(const ModelFactory& make_model,
                                                const EngineOptions& options);
  ~Engine();  // cancels what is left and joins the thread

  // The checks Submit runs first, without submitting: whether `request` could ever run here.
  RequestCheck Check(const GenerationRequest& request) const;
  // Queues a request. Refusals: what Check refuses (InvalidArgument, OutOfRange), and
  // ResourceExhausted when the queue is full (transient: retry later).
  Result<std::shared_ptr<RequestStream>> Submit(GenerationRequest request);
  // Cancels a request (no-op when unknown or finished); its stream ends with kCancelled and
  // its pages are freed.
  void Cancel(RequestId id);

  // Drops every cached prefix (their pages return to the budget once no sequence uses them).
  void ClearPrefixCache();

  // While paused the engine accepts and queues requests but runs no step (a benchmark
  // submits a whole workload, then starts it at once); cancellations still take effect.
  void SetPaused(bool paused);

  EngineStats Stats() const;

  // Non-empty once the engine can serve nothing more: why (data-parallel serving: a rank
  // stopped answering; the message names it). Submit then refuses with FailedPrecondition.
  std::string unavailable() const;
  // Data-parallel serving, a rank other than 0: blocks until rank 0's engine stops (its
  // requests arrive from rank 0; Submit is refused). Returns at once on rank 0 or without
  // data parallelism.
  void WaitUntilReleased();

  // The served model. Its config and tokenizer are the engine's own (no need to open the
  // checkpoint again); they live as long as the engine.
  const std::string& model_name() const;
  const checkpoint::ModelConfig& config() const;
  int64_t vocab_size() const;
  int64_t eos_token_id() const;
  // The model's tokenizer; FailedPrecondition "tokenizer.json not found in <source>" when the
  // checkpoint has none, or the error parsing it (token-id use needs no tokenizer).
  Result<const tokenizer::Tokenizer*> tokenizer() const;
  // KV bytes one sequence holds at `num_tokens` tokens (the engine's page layout).
  int64_t KvBytesAt(int64_t num_tokens) const;
  // Threads of the engine's worker pool.
  int num_threads() const;
  // Speculative decoding: the drafter's name ("" when off) and the most drafts one step
  // verifies per sequence (0 when off); and one line saying so, with why it is off when the
  // checkpoint has a drafter ("mtp, 1 draft token", "off (...)").
  const std::string& drafter_name() const;
  int64_t draft_tokens() const;
  const std::string& speculative_summary() const;

 private:
  class Impl;
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dsv4
