#include "dsv4/engine.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <thread>

#include "kv/prefix_cache.h"
#include "checkpoint/checkpoint.h"
#include "testing/weight_generator.h"
#include "checkpoint/presets.h"
#include "runner/accounting_lm.h"
#include "runner/causal_lm.h"
#include "sched/scheduler.h"

namespace dsv4 {
namespace {

using Clock = std::chrono::steady_clock;

// A request inside the engine thread.
struct Active {
  sched::Sequence seq;
  GenerationRequest request;
  std::shared_ptr<RequestStream> stream;
  Clock::time_point submitted;
};

}  // namespace

class Engine::Impl {
 public:
  Status Init(const EngineOptions& o);
  ~Impl();

  Result<std::shared_ptr<RequestStream>> Submit(GenerationRequest r);
  void Cancel(RequestId id);
  void SetPaused(bool paused);
  void ClearPrefixCache();
  EngineStats Stats() const;

  checkpoint::Checkpoint checkpoint;

 private:
  void Loop();
  void Step();
  void Finish(Active* a, FinishReason reason, const std::string& error = "");
  void DrainInbox();
  // Continues a sequence with no computed tokens from the longest cached prefix of its tokens.
  void TryRestorePrefix(sched::Sequence* s);
  // Snapshots sequences that just reached one of their stop points.
  void SnapshotPrefixes(const sched::StepPlan& plan);

  EngineOptions options_;
  std::unique_ptr<runner::CausalLm> lm_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<kv::KvManager> kv_;
  kv::PrefixCache prefix_cache_;  // before the sequences, after the manager
  std::unique_ptr<sched::Scheduler> scheduler_;
  std::map<RequestId, std::unique_ptr<Active>> active_;  // engine thread only

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
  std::thread thread_;
};

Status Engine::Impl::Init(const EngineOptions& o) {
  options_ = o;
  const bool accounting = !o.accounting_preset.empty();
  if (accounting) {
    DSV4_ASSIGN_OR_RETURN(checkpoint.config, checkpoint::PresetConfig(o.accounting_preset));
    // Capacity studies extrapolate past the trained context (V3.2 stops at 163,840; spec
    // §13.2 compares both at 1M): nothing is computed, only pages are counted.
    checkpoint.config.max_position_embeddings = int64_t{1} << 40;
    checkpoint.name = o.accounting_preset + " (KV accounting only)";
    lm_ = runner::MakeAccountingLm(checkpoint.config);
  } else {
    if (o.model_dir.empty()) {
      DSV4_ASSIGN_OR_RETURN(checkpoint, fixtures::BuiltinDefaultModel());
    } else {
      DSV4_ASSIGN_OR_RETURN(checkpoint, checkpoint::OpenCheckpoint(o.model_dir));
    }
    DSV4_ASSIGN_OR_RETURN(lm_, runner::CreateCausalLm(checkpoint.config, *checkpoint.weights));
  }
  if (o.kv_budget_bytes <= 0) {
    return Status::InvalidArgument("kv budget must be > 0 bytes, got " +
                                   std::to_string(o.kv_budget_bytes));
  }
  pool_ = std::make_unique<ThreadPool>(o.threads);
  kv_ = std::make_unique<kv::KvManager>(lm_->page_layout(), o.kv_budget_bytes,
                                        /*backing=*/!accounting);
  // Snapshots exist for the V4 cache only (V3.2 sequences and the accounting stand-in have
  // none): caching is off for the others.
  options_.prefix_caching =
      o.prefix_caching && !accounting && checkpoint.config.arch == checkpoint::Arch::kV4;
  if (options_.prefix_caching &&
      (o.prefix_snapshot_interval <= 0 || o.prefix_snapshot_interval % 128)) {
    return Status::InvalidArgument("prefix_snapshot_interval must be a positive multiple of 128, "
                                   "got " + std::to_string(o.prefix_snapshot_interval));
  }
  scheduler_ = std::make_unique<sched::Scheduler>(
      sched::SchedulerOptions{o.max_num_batched_tokens, o.max_num_seqs}, kv_.get(),
      [this] { return prefix_cache_.EvictOne(); });
  scheduler_->set_on_admit([this](sched::Sequence* s) { TryRestorePrefix(s); });
  thread_ = std::thread([this] { Loop(); });
  return Status::Ok();
}

Engine::Impl::~Impl() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Result<std::shared_ptr<RequestStream>> Engine::Impl::Submit(GenerationRequest r) {
  const checkpoint::ModelConfig& c = checkpoint.config;
  if (r.prompt.empty()) return Status::InvalidArgument("prompt is empty");
  for (size_t i = 0; i < r.prompt.size(); ++i) {
    if (r.prompt[i] < 0 || r.prompt[i] >= c.vocab_size) {
      return Status::InvalidArgument("prompt token " + std::to_string(i) + " is " +
                                     std::to_string(r.prompt[i]) + ", outside the vocabulary [0, " +
                                     std::to_string(c.vocab_size) + ")");
    }
  }
  if (r.stop.max_new_tokens < 1) {
    return Status::InvalidArgument("max_new_tokens must be >= 1, got " +
                                   std::to_string(r.stop.max_new_tokens));
  }
  if (r.sampling.temperature < 0 || r.sampling.top_p <= 0 || r.sampling.top_p > 1 ||
      r.sampling.top_k < 0) {
    return Status::InvalidArgument("sampling parameters out of range (temperature >= 0, "
                                   "0 < top_p <= 1, top_k >= 0)");
  }
  const int64_t total = static_cast<int64_t>(r.prompt.size()) + r.stop.max_new_tokens;
  if (total > c.max_position_embeddings) {
    return Status::InvalidArgument("prompt of " + std::to_string(r.prompt.size()) + " tokens + " +
                                   std::to_string(r.stop.max_new_tokens) +
                                   " new tokens exceeds the context of " +
                                   std::to_string(c.max_position_embeddings));
  }
  const int64_t need = kv_->layout().BytesAt(total);
  if (need > kv_->budget_bytes()) {
    return Status::ResourceExhausted(
        "request needs " + std::to_string(need) + " bytes of KV cache at " +
        std::to_string(total) + " tokens but the whole budget is " +
        std::to_string(kv_->budget_bytes()) + " bytes");
  }
  auto a = std::make_unique<Active>();
  a->request = std::move(r);
  a->submitted = Clock::now();
  std::shared_ptr<RequestStream> stream;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queued_ >= options_.max_queued_requests) {
      return Status::ResourceExhausted("request queue is full (" +
                                       std::to_string(options_.max_queued_requests) + ")");
    }
    const RequestId id = next_id_++;
    a->seq.id = id;
    a->seq.arrival = id;
    a->seq.tokens = a->request.prompt;
    a->seq.num_prompt = static_cast<int64_t>(a->request.prompt.size());
    a->seq.max_tokens = total;
    if (options_.prefix_caching) {
      const int64_t last = (a->seq.num_prompt - 1) / 128 * 128;  // leave >= 1 token to compute
      for (int64_t p = options_.prefix_snapshot_interval; p < last; p += options_.prefix_snapshot_interval) {
        a->seq.stop_points.push_back(p);
      }
      if (last >= 128) a->seq.stop_points.push_back(last);
    }
    a->seq.state = lm_->NewSequence(kv_.get());
    a->stream = stream = std::make_shared<RequestStream>(id);
    inbox_.push_back(std::move(a));
    ++queued_;
  }
  cv_.notify_all();
  return stream;
}

void Engine::Impl::Cancel(RequestId id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    cancels_.push_back(id);
  }
  cv_.notify_all();
}

void Engine::Impl::ClearPrefixCache() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    clear_cache_ = true;
  }
  cv_.notify_all();
}

void Engine::Impl::SetPaused(bool paused) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    paused_ = paused;
  }
  cv_.notify_all();
}

EngineStats Engine::Impl::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void Engine::Impl::Finish(Active* a, FinishReason reason, const std::string& error) {
  scheduler_->Remove(&a->seq);  // frees its pages
  {
    // Stats first, so a client that saw the final event also sees the pages returned.
    std::lock_guard<std::mutex> lock(mu_);
    --queued_;
    ++stats_.finished;
    stats_.running = static_cast<int64_t>(scheduler_->num_running());
    stats_.waiting = static_cast<int64_t>(scheduler_->num_waiting());
    stats_.kv = kv_->Stats();
  }
  TokenEvent ev;
  ev.finished = true;
  ev.reason = reason;
  ev.error = error;
  ev.index = a->seq.num_generated();
  ev.seconds = std::chrono::duration<double>(Clock::now() - a->submitted).count();
  a->stream->Push(std::move(ev));
  active_.erase(a->seq.id);
}

void Engine::Impl::DrainInbox() {
  std::vector<std::unique_ptr<Active>> fresh;
  std::vector<RequestId> cancels;
  bool clear = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    fresh.swap(inbox_);
    cancels.swap(cancels_);
    std::swap(clear, clear_cache_);
  }
  if (clear) {
    prefix_cache_.Clear();
    std::lock_guard<std::mutex> lock(mu_);
    stats_.prefix_cache_entries = 0;
    stats_.kv = kv_->Stats();
  }
  for (auto& a : fresh) {
    Active* p = a.get();
    active_[p->seq.id] = std::move(a);
    scheduler_->Add(&p->seq);  // a cached prefix is looked up when it is admitted
  }
  for (RequestId id : cancels) {
    auto it = active_.find(id);
    if (it != active_.end()) Finish(it->second.get(), FinishReason::kCancelled);
  }
}

void Engine::Impl::TryRestorePrefix(sched::Sequence* s) {
  if (!options_.prefix_caching || s->num_computed != 0) return;
  const kv::PrefixSnapshot* snap = prefix_cache_.Lookup(s->tokens, s->num_tokens() - 1);
  if (snap == nullptr) return;
  // The hit is now the most recently used entry: older entries give way for its copies.
  Status restored = s->state->RestoreSnapshot(*snap);
  while (!restored.ok() && prefix_cache_.num_entries() > 1 && prefix_cache_.EvictOne()) {
    restored = s->state->RestoreSnapshot(*snap);
  }
  if (!restored.ok()) return;
  s->num_computed = snap->num_tokens;
  std::lock_guard<std::mutex> lock(mu_);
  stats_.prefix_hits += 1;
  stats_.prefix_hit_tokens += snap->num_tokens;
}

void Engine::Impl::SnapshotPrefixes(const sched::StepPlan& plan) {
  if (!options_.prefix_caching) return;
  for (const sched::ScheduledChunk& c : plan.chunks) {
    sched::Sequence* s = c.seq;
    const int64_t p = s->num_computed;
    if (std::find(s->stop_points.begin(), s->stop_points.end(), p) == s->stop_points.end()) continue;
    if (prefix_cache_.Contains(s->tokens, p)) continue;
    std::unique_ptr<kv::PrefixSnapshot> snap = s->state->TakeSnapshot();
    if (snap) prefix_cache_.Insert(s->tokens, std::move(snap));
  }
  std::lock_guard<std::mutex> lock(mu_);
  stats_.prefix_cache_entries = prefix_cache_.num_entries();
}

void Engine::Impl::Loop() {
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] {
        return stop_ || (!paused_ && (!inbox_.empty() || !cancels_.empty() || clear_cache_ ||
                                      !active_.empty()));
      });
      if (stop_) break;
    }
    DrainInbox();
    if (!active_.empty()) Step();
  }
  while (!active_.empty()) Finish(active_.begin()->second.get(), FinishReason::kCancelled);
}

void Engine::Impl::Step() {
  sched::StepPlan plan = scheduler_->Plan();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.running = static_cast<int64_t>(scheduler_->num_running());
    stats_.waiting = static_cast<int64_t>(scheduler_->num_waiting());
    stats_.max_running = std::max(stats_.max_running, stats_.running);
    stats_.kv = kv_->Stats();
  }
  if (plan.chunks.empty()) {
    // Nothing can run (every waiting request is blocked on KV memory held by nobody running):
    // cannot happen with Submit's fit check; wait for new input instead of spinning.
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(5));
    return;
  }
  std::vector<runner::CausalLm::BatchItem> batch;
  std::vector<std::vector<float>> logits(plan.chunks.size());
  for (size_t i = 0; i < plan.chunks.size(); ++i) {
    const sched::ScheduledChunk& c = plan.chunks[i];
    batch.push_back({c.seq->state.get(),
                     {c.seq->tokens.data() + c.begin, static_cast<size_t>(c.count)},
                     c.sample ? runner::LogitsMode::kLast : runner::LogitsMode::kNone,
                     &logits[i]});
  }
  Status s = lm_->ForwardBatch(*pool_, batch);
  if (!s.ok()) {
    for (const auto& c : plan.chunks) {
      auto it = active_.find(c.seq->id);
      if (it != active_.end()) Finish(it->second.get(), FinishReason::kError, s.message());
    }
    return;
  }
  scheduler_->Commit(plan);
  SnapshotPrefixes(plan);
  int64_t prompt_tokens = 0, generated = 0;
  const checkpoint::ModelConfig& cfg = checkpoint.config;
  for (size_t i = 0; i < plan.chunks.size(); ++i) {
    const sched::ScheduledChunk& c = plan.chunks[i];
    prompt_tokens += std::max<int64_t>(0, std::min(c.begin + c.count, c.seq->num_prompt) - c.begin);
    if (!c.sample) continue;
    Active* a = active_.at(c.seq->id).get();
    const int32_t token = sample::SampleToken(logits[i], a->request.sampling, c.seq->num_tokens());
    c.seq->tokens.push_back(token);
    ++generated;
    TokenEvent ev;
    ev.token = token;
    ev.index = c.seq->num_generated() - 1;
    ev.seconds = std::chrono::duration<double>(Clock::now() - a->submitted).count();
    a->stream->Push(ev);
    const StopConditions& stop = a->request.stop;
    const bool eos = !stop.ignore_eos &&
                     (token == cfg.eos_token_id ||
                      std::find(stop.stop_token_ids.begin(), stop.stop_token_ids.end(), token) !=
                          stop.stop_token_ids.end());
    if (eos) {
      Finish(a, FinishReason::kStop);
    } else if (c.seq->num_generated() >= stop.max_new_tokens) {
      Finish(a, FinishReason::kLength);
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  stats_.steps += 1;
  stats_.prompt_tokens += prompt_tokens;
  stats_.generated_tokens += generated;
  stats_.running = static_cast<int64_t>(scheduler_->num_running());
  stats_.waiting = static_cast<int64_t>(scheduler_->num_waiting());
  stats_.preemptions = scheduler_->num_preemptions();
  stats_.kv = kv_->Stats();
}

Result<std::unique_ptr<Engine>> Engine::Create(const EngineOptions& options) {
  auto impl = std::make_unique<Impl>();
  DSV4_RETURN_IF_ERROR(impl->Init(options));
  return std::unique_ptr<Engine>(new Engine(std::move(impl)));
}

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

Result<std::shared_ptr<RequestStream>> Engine::Submit(GenerationRequest request) {
  return impl_->Submit(std::move(request));
}
void Engine::Cancel(RequestId id) { impl_->Cancel(id); }
void Engine::SetPaused(bool paused) { impl_->SetPaused(paused); }
void Engine::ClearPrefixCache() { impl_->ClearPrefixCache(); }
EngineStats Engine::Stats() const { return impl_->Stats(); }
const std::string& Engine::model_name() const { return impl_->checkpoint.name; }
int64_t Engine::vocab_size() const { return impl_->checkpoint.config.vocab_size; }
int64_t Engine::eos_token_id() const { return impl_->checkpoint.config.eos_token_id; }

}  // namespace dsv4
