// The engine's public API (Engine), its thread's single-process loop, the step and what
// both loops share; the state is Engine::Impl (engine/engine_impl.h), the data-parallel
// ticks engine/data_parallel_loop.cpp.
#include "dsv4/engine.h"

#include <algorithm>
#include <cstdio>

#include "engine/engine_impl.h"
#include "engine/stop_condition.h"
#include "runner/model_fingerprint.h"

namespace dsv4 {

using engine::Active;
using engine::Clock;

Status Engine::Impl::Init(const ModelFactory& make_model, const EngineOptions& o) {
  options_ = o;
  if (!make_model) return Status::InvalidArgument("no model: the engine's model factory is empty");
  DSV4_ASSIGN_OR_RETURN(model_, make_model());
  DSV4_CHECK(model_ != nullptr && model_->lm != nullptr);
  if (model_->tokenizer_json.empty()) {
    tokenizer_status_ = Status::FailedPrecondition("tokenizer.json not found in " +
                                                   (model_->source.empty() ? model_->name
                                                                           : model_->source));
  } else {
    Result<std::unique_ptr<tokenizer::Tokenizer>> t =
        tokenizer::Tokenizer::FromJson(model_->tokenizer_json, model_->name + "/tokenizer.json");
    if (t.ok()) {
      tokenizer_ = std::move(t).value();
    } else {
      tokenizer_status_ = t.status();
    }
  }
  if (o.kv_budget_bytes <= 0) {
    return Status::InvalidArgument("kv budget must be > 0 bytes, got " +
                                   std::to_string(o.kv_budget_bytes));
  }
  const runner::CausalLm& lm = *model_->lm;
  pool_ = std::make_unique<ThreadPool>(o.threads);
  // A budget below what the smallest request needs (one prompt token and one new token) can
  // only ever refuse: say so at start, not on every request.
  if (const int64_t smallest = lm.page_layout().BytesAt(2); o.kv_budget_bytes < smallest) {
    return Status::InvalidArgument(
        "kv budget of " + std::to_string(o.kv_budget_bytes) + " bytes cannot hold even a " +
        "2-token request of " + model_->name + ", which needs " + std::to_string(smallest) +
        " bytes");
  }
  kv_ = std::make_unique<kv::KvManager>(lm.page_layout(), o.kv_budget_bytes,
                                        /*backing=*/lm.writes_kv());
  limits_ = {.vocab_size = config().vocab_size,
             .context = config().max_position_embeddings,
             .layout = &kv_->layout(),
             .kv_budget_bytes = kv_->budget_bytes()};
  const bool caching = o.prefix_caching && lm.snapshots_prefixes();
  DSV4_ASSIGN_OR_RETURN(
      prefix_, engine::PrefixPolicy::Create({
                   .enabled = caching,
                   .snapshot_interval = o.prefix_snapshot_interval,
                   .snapshot_prompt_end = o.prefix_snapshot_prompt_end,
                   .disk_dir = o.kv_cache_dir,
                   .disk_budget_bytes = o.kv_cache_disk_budget_bytes,
                   // Only computed when a file may be written or read (it reads samples of
                   // every tensor).
                   .model_fingerprint =
                       caching && !o.kv_cache_dir.empty() ? runner::ModelFingerprint(*model_) : 0,
                   .warn = o.on_warning}));
  scheduler_ = std::make_unique<sched::Scheduler>(
      sched::SchedulerOptions{o.max_num_batched_tokens, o.max_num_seqs}, kv_.get(),
      [this] { return prefix_->EvictOne(); });
  scheduler_->set_on_admit([this](sched::Sequence* s) { RestorePrefix(s); });
  DSV4_ASSIGN_OR_RETURN(spec_, engine::Speculation::Create(*model_, o, &spec_summary_,
                                                           [this](const std::string& m) {
                                                             Warn(m);
                                                           }));
  if (spec_) drafter_name_ = std::string(spec_->drafter().name());
  if (o.data_parallel) {
    if (o.data_parallel->comm() == nullptr) {
      return Status::InvalidArgument("data-parallel serving needs a communicator");
    }
    o.data_parallel->set_steps_agreed(true);
    if (o.data_parallel->rank() == 0) {
      dp_ = std::make_unique<engine::DpLeader>(o.data_parallel->num_ranks());
      stats_.ranks = dp_->ranks();
    }
  }
  stats_.kv = kv_->Stats();
  prefix_->FillStats(&stats_);
  if (spec_) spec_->FillStats(&stats_);
  thread_ = std::thread([this] { Loop(); });
  return Status::Ok();
}

Result<const tokenizer::Tokenizer*> Engine::Impl::tokenizer() const {
  if (tokenizer_ == nullptr) return tokenizer_status_;
  return static_cast<const tokenizer::Tokenizer*>(tokenizer_.get());
}

Engine::Impl::~Impl() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

RequestCheck Engine::Impl::Check(const GenerationRequest& r) const {
  return engine::ValidateRequest(r, limits_);
}

std::unique_ptr<Active> Engine::Impl::MakeActive(GenerationRequest r, RequestId id) {
  const int64_t total = static_cast<int64_t>(r.prompt.size()) + r.stop.max_new_tokens;
  auto a = std::make_unique<Active>();
  a->request = std::move(r);
  a->submitted = Clock::now();
  a->seq.id = id;
  a->seq.arrival = id;
  a->seq.tokens = a->request.prompt;
  a->seq.num_prompt = static_cast<int64_t>(a->request.prompt.size());
  a->seq.max_tokens = total;
  a->seq.stop_points = prefix_->StopPoints(a->seq.num_prompt);
  a->seq.state = model_->lm->NewSequence(kv_.get());
  a->stream = std::make_shared<RequestStream>(id);
  return a;
}

Result<std::shared_ptr<RequestStream>> Engine::Impl::Submit(GenerationRequest r) {
  if (options_.data_parallel && options_.data_parallel->rank() != 0) {
    return Status::FailedPrecondition("data-parallel serving: rank " +
                                      std::to_string(options_.data_parallel->rank()) +
                                      " runs what rank 0 places on it, it takes no requests");
  }
  RequestCheck check = Check(r);
  if (!check.ok()) return check.status;
  std::shared_ptr<RequestStream> stream;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!unavailable_.empty()) return Status::FailedPrecondition(unavailable_);
    if (queued_ >= options_.max_queued_requests) {
      return Status::ResourceExhausted("request queue is full (" +
                                       std::to_string(options_.max_queued_requests) + ")");
    }
    std::unique_ptr<Active> a = MakeActive(std::move(r), next_id_++);
    stream = a->stream;
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

void Engine::Impl::Warn(const std::string& m) const {
  if (options_.on_warning) {
    options_.on_warning(m);
  } else {
    std::fprintf(stderr, "warning: %s\n", m.c_str());
  }
}

EngineStats Engine::Impl::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void Engine::Impl::Finish(Active* a, FinishReason reason, const std::string& error) {
  scheduler_->Remove(&a->seq);  // frees its pages
  if (spec_) spec_->Finish(&a->draft);
  prefix_->OnFinish(a->seq, /*keep=*/reason != FinishReason::kError);
  {
    // Stats first, so a client that saw the final event also sees the pages returned.
    std::lock_guard<std::mutex> lock(mu_);
    --queued_;
    ++stats_.finished;
    stats_.running = static_cast<int64_t>(scheduler_->num_running());
    stats_.waiting = static_cast<int64_t>(scheduler_->num_waiting());
    stats_.kv = kv_->Stats();
    prefix_->FillStats(&stats_);
    if (spec_) spec_->FillStats(&stats_);
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
    prefix_->Clear();
    std::lock_guard<std::mutex> lock(mu_);
    prefix_->FillStats(&stats_);
    stats_.kv = kv_->Stats();
  }
  if (dp_) {  // data-parallel rank 0: requests placed elsewhere and their cancels go out
    DSV4_CHECK(dp_control_ != nullptr);
    const int64_t local = SequenceKvBytes();
    std::erase_if(fresh, [&](std::unique_ptr<Active>& a) {
      const int rank = dp_->Place(local, KvBytesAt(a->seq.max_tokens));
      if (rank == 0) return false;
      dp_->Forward(a->seq.id, rank, a->stream);
      dp_control_->placed.push_back({a->seq.id, rank, std::move(a->request)});
      return true;
    });
    std::erase_if(cancels, [&](RequestId id) {
      if (!dp_->IsRemote(id)) return false;
      dp_control_->cancelled.push_back(id);
      return true;
    });
  }
  for (auto& a : fresh) {
    Active* p = a.get();
    if (spec_) spec_->Start(p->request, &p->draft);
    active_[p->seq.id] = std::move(a);
    scheduler_->Add(&p->seq);  // a cached prefix is looked up when it is admitted
  }
  for (RequestId id : cancels) {
    auto it = active_.find(id);
    if (it != active_.end()) Finish(it->second.get(), FinishReason::kCancelled);
  }
}

void Engine::Impl::RestorePrefix(sched::Sequence* s) {
  std::vector<uint8_t> draft;
  const int64_t restored = prefix_->TryRestore(s, &draft);
  if (restored == 0) return;
  if (spec_) spec_->Resume(s, &active_.at(s->id)->draft, draft);
  std::lock_guard<std::mutex> lock(mu_);
  stats_.prefix_hits += 1;
  stats_.prefix_hit_tokens += restored;
  prefix_->FillStats(&stats_);
}

void Engine::Impl::Loop() {
  if (options_.data_parallel) {
    if (dp_) {
      LoopLeader();
    } else {
      LoopFollower();
    }
  }
  while (!options_.data_parallel) {
    bool step = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      // Cancellations and cache clears are handled even while paused (their pages and queue
      // slots come back at once); new requests and steps wait for the pause to end.
      cv_.wait(lock, [&] {
        return stop_ || !cancels_.empty() || clear_cache_ ||
               (!paused_ && (!inbox_.empty() || !active_.empty()));
      });
      if (stop_) break;
      step = !paused_;
    }
    DrainInbox();
    if (step && !active_.empty()) Step();
  }
  while (!active_.empty()) Finish(active_.begin()->second.get(), FinishReason::kCancelled);
  if (dp_) dp_->EndAll(FinishReason::kCancelled);
  // Cached prefixes outlive the process when there is a disk tier.
  prefix_->SpillAll();
  std::lock_guard<std::mutex> lock(mu_);
  released_ = true;
  cv_.notify_all();
}

void Engine::Impl::Step() {
  sched::StepPlan plan = scheduler_->Plan();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.running = static_cast<int64_t>(scheduler_->num_running());
    stats_.waiting = static_cast<int64_t>(scheduler_->num_waiting());
    stats_.max_running = std::max(stats_.max_running, stats_.running);
    kv_->FillStats(&stats_.kv);  // reuses its capacity
  }
  if (spec_) {
    for (sched::Sequence* s : plan.preempted) spec_->Restart(s, &active_.at(s->id)->draft);
  }
  if (plan.chunks.empty()) {
    // Nothing can run (every waiting request is blocked on KV memory held by nobody running):
    // cannot happen with Submit's fit check; wait for new input instead of spinning.
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(5));
    return;
  }
  // Kept across steps (engine thread only): a warm step reuses the vectors' capacity.
  std::vector<runner::CausalLm::BatchItem>& batch = step_batch_;
  std::vector<std::vector<float>>& logits = step_logits_;
  const size_t n = plan.chunks.size();
  batch.clear();
  step_active_.clear();
  if (logits.size() < n) logits.resize(n);
  if (step_emitted_.size() < n) step_emitted_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const sched::ScheduledChunk& c = plan.chunks[i];
    Active* a = active_.at(c.seq->id).get();
    step_active_.push_back(a);
    batch.push_back({c.seq->state.get(),
                     {c.seq->tokens.data() + c.begin, static_cast<size_t>(c.count)},
                     c.sample ? runner::LogitsMode::kLast : runner::LogitsMode::kNone,
                     &logits[i]});
    if (spec_) spec_->Prepare(c, &a->draft, &batch.back());  // drafts: [last, d1..dk], kAll
  }
  const Clock::time_point t0 = Clock::now();
  Status s = model_->lm->ForwardBatch(*pool_, batch);
  const double step_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!s.ok()) {
    for (Active* a : step_active_) Finish(a, FinishReason::kError, s.message());
    return;
  }
  scheduler_->Commit(plan);
  // Every sampled chunk's tokens first (sequences and their KV settled), then the snapshots
  // that reads, the stats (so that a client who saw a request end sees its step counted),
  // then the events (a finished request leaves active_).
  std::vector<FinishReason>& ends = step_ends_;
  ends.assign(n, FinishReason::kNone);
  int64_t prompt_tokens = 0, generated = 0;
  for (size_t i = 0; i < n; ++i) {
    const sched::ScheduledChunk& c = plan.chunks[i];
    prompt_tokens += std::max<int64_t>(0, std::min(c.begin + c.count, c.seq->num_prompt) - c.begin);
    if (!c.sample) continue;
    ends[i] = Verify(i, c, step_active_[i]);
    generated += static_cast<int64_t>(step_emitted_[i].size());
  }
  if (spec_) {
    // A snapshot keeps the drafter's state there (engine/draft_snapshot.h).
    prefix_->SnapshotAfterStep(plan, [this](const sched::ScheduledChunk& c) {
      return spec_->Capture(*pool_, c, &active_.at(c.seq->id)->draft);
    });
  } else {
    prefix_->SnapshotAfterStep(plan);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    prefix_->FillStats(&stats_);
    if (spec_) spec_->FillStats(&stats_);
    stats_.steps += 1;
    stats_.prompt_tokens += prompt_tokens;
    stats_.generated_tokens += generated;
    stats_.preemptions = scheduler_->num_preemptions();
  }
  for (size_t i = 0; i < n; ++i) {
    if (!plan.chunks[i].sample) continue;
    Active* a = step_active_[i];
    const std::vector<int32_t>& emitted = step_emitted_[i];
    const int64_t first = a->seq.num_generated() - static_cast<int64_t>(emitted.size());
    const double seconds = std::chrono::duration<double>(Clock::now() - a->submitted).count();
    for (size_t t = 0; t < emitted.size(); ++t) {
      TokenEvent ev;
      ev.token = emitted[t];
      ev.index = first + static_cast<int64_t>(t);
      ev.seconds = seconds;
      a->stream->Push(ev);
    }
    if (ends[i] != FinishReason::kNone) {
      Finish(a, ends[i]);
      step_active_[i] = nullptr;
    }
  }
  if (spec_) {
    for (size_t i = 0; i < n; ++i) {
      if (step_active_[i] == nullptr) continue;
      spec_->Propose(*pool_, plan.chunks[i], prefix_->MaxStepAdvance(*plan.chunks[i].seq),
                     &step_active_[i]->draft);
    }
    spec_->RecordStep(plan, step_seconds);  // auto mode's cost meter (adds drafting time)
  }
  std::lock_guard<std::mutex> lock(mu_);
  stats_.running = static_cast<int64_t>(scheduler_->num_running());
  stats_.waiting = static_cast<int64_t>(scheduler_->num_waiting());
  kv_->FillStats(&stats_.kv);  // reuses its capacity
}

FinishReason Engine::Impl::Verify(size_t i, const sched::ScheduledChunk& c, Active* a) {
  sched::Sequence& seq = *c.seq;
  std::vector<int32_t>& emitted = step_emitted_[i];
  const std::span<const int32_t> drafts(a->draft.drafts.data(), static_cast<size_t>(c.num_draft));
  const int64_t accepted = sample::VerifyDrafts(step_logits_[i], drafts, a->request.sampling,
                                                seq.num_tokens(), &sample_scratch_, &emitted);
  // Stop conditions apply token by token: nothing after a stop is emitted or kept.
  FinishReason end = FinishReason::kNone;
  for (size_t t = 0; t < emitted.size() && end == FinishReason::kNone; ++t) {
    end = engine::StopAfter(a->request.stop, config().eos_token_id, emitted[t],
                            seq.num_generated() + static_cast<int64_t>(t) + 1);
    if (end != FinishReason::kNone) emitted.resize(t + 1);
  }
  if (c.num_draft > 0) {
    spec_->Settle(c, accepted, static_cast<int64_t>(emitted.size()) - 1, &a->draft);
  }
  seq.AppendVerified(emitted);
  return end;
}

Result<std::unique_ptr<Engine>> Engine::Create(const ModelFactory& make_model,
                                               const EngineOptions& options) {
  auto impl = std::make_unique<Impl>();
  DSV4_RETURN_IF_ERROR(impl->Init(make_model, options));
  return std::unique_ptr<Engine>(new Engine(std::move(impl)));
}

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

RequestCheck Engine::Check(const GenerationRequest& request) const { return impl_->Check(request); }
Result<std::shared_ptr<RequestStream>> Engine::Submit(GenerationRequest request) {
  return impl_->Submit(std::move(request));
}
void Engine::Cancel(RequestId id) { impl_->Cancel(id); }
void Engine::SetPaused(bool paused) { impl_->SetPaused(paused); }
void Engine::ClearPrefixCache() { impl_->ClearPrefixCache(); }
EngineStats Engine::Stats() const { return impl_->Stats(); }
std::string Engine::unavailable() const { return impl_->unavailable(); }
void Engine::WaitUntilReleased() { impl_->WaitUntilReleased(); }
const std::string& Engine::model_name() const { return impl_->model().name; }
const checkpoint::ModelConfig& Engine::config() const { return impl_->config(); }
int64_t Engine::vocab_size() const { return impl_->config().vocab_size; }
int64_t Engine::eos_token_id() const { return impl_->config().eos_token_id; }
Result<const tokenizer::Tokenizer*> Engine::tokenizer() const { return impl_->tokenizer(); }
int64_t Engine::KvBytesAt(int64_t num_tokens) const { return impl_->KvBytesAt(num_tokens); }
int Engine::num_threads() const { return impl_->num_threads(); }
const std::string& Engine::drafter_name() const { return impl_->drafter_name(); }
int64_t Engine::draft_tokens() const { return impl_->draft_tokens(); }
const std::string& Engine::speculative_summary() const { return impl_->speculative_summary(); }

}  // namespace dsv4
