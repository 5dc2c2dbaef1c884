// The serving engine: continuous batching of many generation requests over one model, with a
// paged, budgeted KV cache. One engine thread owns every piece of serving state (scheduler,
// KV pages, model runner); other threads only submit, cancel and read events.
//
// Thread safety: every public method may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/status.h"
#include "kv/kv_manager.h"
#include "sample/sampler.h"

namespace dsv4 {

using RequestId = int64_t;
using sample::SamplingParams;

struct StopConditions {
  int64_t max_new_tokens = 16;
  bool ignore_eos = false;
  std::vector<int32_t> stop_token_ids;  // besides the model's eos (unless ignore_eos)
};

struct GenerationRequest {
  std::vector<int32_t> prompt;  // token ids, at least one
  SamplingParams sampling;
  StopConditions stop;
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
  double seconds = 0; // since the request was submitted
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

struct EngineOptions {
  std::string model_dir;               // empty: the built-in dsv4-tiny model
  // Admission studies: a model preset ("v3.2", "v4-pro", "v4-flash") run by a stand-in that
  // computes nothing and accounts KV pages without backing memory (runner/accounting_lm.h).
  // Every generated token is 0. Empty: run the real model.
  std::string accounting_preset;
  int threads = 0;                     // 0: all cores
  int64_t kv_budget_bytes = 1ll << 30; // pages of all sequences together
  int64_t max_num_batched_tokens = 256;
  int64_t max_num_seqs = 64;
  int64_t max_queued_requests = 1024;  // Submit beyond this: ResourceExhausted
  // Prefix caching: prompts are snapshotted at every multiple of `prefix_snapshot_interval`
  // tokens (a multiple of 128) and at their last multiple of 128; a later request whose
  // prompt starts with a cached prefix continues from it instead of recomputing it, with
  // bit-identical results. Cached prefixes are evicted LRU when the KV budget needs pages.
  bool prefix_caching = true;
  int64_t prefix_snapshot_interval = 4096;
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
  int64_t prefix_cache_entries = 0;
  kv::KvStats kv;
};

class Engine {
 public:
  // Loads the model and starts the engine thread.
  static Result<std::unique_ptr<Engine>> Create(const EngineOptions& options);
  ~Engine();  // cancels what is left and joins the thread

  // Queues a request. InvalidArgument: empty prompt, token outside the vocabulary, bad
  // sampling values, prompt + max_new_tokens past the model's context; ResourceExhausted: the
  // request could never fit in the KV budget even alone, or the queue is full.
  Result<std::shared_ptr<RequestStream>> Submit(GenerationRequest request);
  // Cancels a request (no-op when unknown or finished); its stream ends with kCancelled and
  // its pages are freed.
  void Cancel(RequestId id);

  // Drops every cached prefix (their pages return to the budget once no sequence uses them).
  void ClearPrefixCache();

  // While paused the engine accepts and queues requests but runs no step (a benchmark
  // submits a whole workload, then starts it at once).
  void SetPaused(bool paused);

  EngineStats Stats() const;
  const std::string& model_name() const;
  int64_t vocab_size() const;
  int64_t eos_token_id() const;

  class Impl;

 private:
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dsv4
