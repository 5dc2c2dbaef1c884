// The engine's state (Engine::Impl): what the engine thread owns, the one cross-thread
// channel (inbox, cancellations, stats under a mutex), and the thread's loops. Private to
// src/engine: engine.cpp has the public API, the single-process loop and the step;
// data_parallel_loop.cpp the data-parallel ticks (engine/data_parallel.h).
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "dsv4/engine.h"
#include "engine/data_parallel.h"
#include "engine/prefix_policy.h"
#include "engine/request_check.h"
#include "engine/speculation.h"
#include "checkpoint/config.h"
#include "runner/causal_lm.h"
#include "runner/loaded_model.h"
#include "sample/sampler.h"
#include "sched/scheduler.h"
#include "tokenizer/tokenizer.h"

namespace dsv4 {
namespace engine {

using Clock = std::chrono::steady_clock;

// A request inside the engine thread.
struct Active {
  sched::Sequence seq;
  GenerationRequest request;
  std::shared_ptr<RequestStream> stream;
  Clock::time_point submitted;
  engine::DraftSlot draft;  // speculative decoding
};

}  // namespace engine

class Engine::Impl {
 public:
  using Active = engine::Active;
  using Clock = engine::Clock;

  Status Init(const ModelFactory& make_model, const EngineOptions& o);
  ~Impl();

  RequestCheck Check(const GenerationRequest& r) const;
  Result<std::shared_ptr<RequestStream>> Submit(GenerationRequest r);
  void Cancel(RequestId id);
  void SetPaused(bool paused);
  void ClearPrefixCache();
  EngineStats Stats() const;
  std::string unavailable() const {
    std::lock_guard<std::mutex> lock(mu_);
    return unavailable_;
  }
  void WaitUntilReleased() {
    if (options_.data_parallel == nullptr || options_.data_parallel->rank() == 0) return;
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return released_; });
  }

  // Immutable after Init: read by any thread.
  const runner::LoadedModel& model() const { return *model_; }
  const checkpoint::ModelConfig& config() const { return model_->lm->config(); }
  Result<const tokenizer::Tokenizer*> tokenizer() const;
  int64_t KvBytesAt(int64_t n) const { return kv_->layout().BytesAt(n); }
  int num_threads() const { return pool_->num_threads(); }
  const std::string& drafter_name() const { return drafter_name_; }
  int64_t draft_tokens() const { return spec_ ? spec_->draft_tokens() : 0; }
  const std::string& speculative_summary() const { return spec_summary_; }

 private:
  void Loop();
  // Data-parallel serving (engine/data_parallel.h): rank 0's ticks and the other ranks'
  // (engine/data_parallel_loop.cpp, with AgreedStep, FillReport, SequenceKvBytes and
  // FailDataParallel).
  void LoopLeader();
  void LoopFollower();
  // Step 2 of a tick: the engine step when there are sequences; joins with zero rows when
  // the tick runs a step this rank had no forward in.
  void AgreedStep(bool step);
  void FillReport(engine::DpReport* r);
  // KV bytes the running and waiting sequences hold at their lengths (cached prefixes not
  // counted): a rank's load (engine thread).
  int64_t SequenceKvBytes() const;
  // Rank 0: a rank failed; ends every stream with `error` and refuses new requests.
  void FailDataParallel(const std::string& error);
  // A new request's state (Submit's, and a follower's for what rank 0 placed on it).
  std::unique_ptr<Active> MakeActive(GenerationRequest r, RequestId id);
  void Step();
  // A step's sampled chunk: the tokens it emits (the target's, accepted drafts first), cut
  // at a stop condition (returned), with rejected drafts rolled back; the sequence grows.
  FinishReason Verify(size_t i, const sched::ScheduledChunk& c, Active* a);
  void Finish(Active* a, FinishReason reason, const std::string& error = "");
  void DrainInbox();
  void Warn(const std::string& m) const;
  // Continues a sequence with no computed tokens from a cached prefix (counted in stats_).
  void RestorePrefix(sched::Sequence* s);

  EngineOptions options_;
  std::unique_ptr<runner::LoadedModel> model_;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer_;
  Status tokenizer_status_;  // why tokenizer_ is null
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<kv::KvManager> kv_;
  engine::RequestLimits limits_;  // points into kv_
  std::unique_ptr<engine::PrefixPolicy> prefix_;  // before the sequences, after the manager
  std::unique_ptr<engine::Speculation> spec_;     // null: speculative decoding is off
  std::string drafter_name_;
  std::string spec_summary_;
  std::unique_ptr<sched::Scheduler> scheduler_;
  std::map<RequestId, std::unique_ptr<Active>> active_;  // engine thread only
  // A step's batch, logits FP32 [vocab] per chunk, and the sampler's buffers, kept across
  // steps (engine thread only) so that a warm decode step allocates none of them.
  std::vector<runner::CausalLm::BatchItem> step_batch_;
  std::vector<std::vector<float>> step_logits_;
  std::vector<std::vector<int32_t>> step_emitted_;  // per chunk: the tokens it emits
  std::vector<Active*> step_active_;                 // per chunk; null once it finished
  std::vector<FinishReason> step_ends_;              // per chunk
  sample::SampleScratch sample_scratch_;

  // The one cross-thread channel: new requests and cancellations.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Active>> inbox_;
  std::vector<RequestId> cancels_;
  bool stop_ = false;
  bool paused_ = false;
  bool clear_cache_ = false;
  RequestId next_id_ = 1;
  int64_t queued_ = 0;  // submitted, not finished
  EngineStats stats_;   // guarded by mu_
  std::string unavailable_;  // guarded by mu_
  bool released_ = false;    // guarded by mu_: a follower's loop ended
  // Data-parallel serving: rank 0's placement and remote streams; a follower's streams of
  // the requests it runs, keyed by rank 0's ids (engine thread only).
  std::unique_ptr<engine::DpLeader> dp_;
  std::vector<std::shared_ptr<RequestStream>> dp_streams_;
  std::vector<std::byte> dp_buffer_;
  engine::DpControl* dp_control_ = nullptr;  // rank 0: the tick's control being filled
  std::thread thread_;
};

}  // namespace dsv4
