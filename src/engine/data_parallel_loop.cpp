// Data-parallel serving's ticks (engine/data_parallel.h): rank 0's (LoopLeader) and every
// other rank's (LoopFollower), run by the engine thread in place of the single-process loop.
#include <chrono>
#include <thread>

#include "engine/engine_impl.h"
#include "dist/communicator.h"

namespace dsv4 {

void Engine::Impl::LoopLeader() {
  dist::ExpertParallel& ep = *options_.data_parallel;
  dist::Communicator& comm = *ep.comm();
  comm.SetFailureHandler([this](const std::string& error) { FailDataParallel(error); });
  std::vector<engine::DpReport> reports(static_cast<size_t>(ep.num_ranks()));
  std::vector<std::vector<std::byte>> gathered;
  engine::DpControl control;
  // With nothing to do, a tick that runs no step at least this often tells the other ranks
  // that rank 0 lives (and rank 0 that they do).
  const auto keep_alive = std::chrono::duration<double>(comm.KeepAliveInterval());
  int64_t ticks = 0;
  while (true) {
    bool stop = false, paused = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      // No rank has work: wait here; the other ranks wait for the control message.
      cv_.wait_for(lock, keep_alive, [&] {
        return stop_ || !cancels_.empty() || clear_cache_ ||
               (!paused_ && (!inbox_.empty() || !active_.empty() || dp_->others_busy()));
      });
      stop = stop_;
      paused = paused_;
    }
    control = {};
    control.stop = stop;
    if (!stop) {
      dp_control_ = &control;
      DrainInbox();  // places the new requests, routes the cancels
      dp_control_ = nullptr;
      control.step = !paused && (!active_.empty() || dp_->others_busy());
    }
    engine::EncodeControl(control, &dp_buffer_);
    comm.Broadcast(&dp_buffer_, /*bounded=*/ticks > 0);
    if (stop) break;
    AgreedStep(control.step);
    FillReport(&reports[0]);
    // The first report comes once a rank has loaded and started its engine (as long as that
    // takes); later ones within the timeout.
    comm.GatherToRoot({}, &gathered, /*bounded=*/ticks++ > 0);
    for (size_t q = 1; q < reports.size(); ++q) {
      const Status s = engine::DecodeReport(gathered[q], &reports[q]);
      DSV4_CHECK_MSG(s.ok(), s.message().c_str());
    }
    const int64_t ended = dp_->Update(reports);
    {
      std::lock_guard<std::mutex> lock(mu_);
      queued_ -= ended;
      stats_.finished += ended;
      stats_.ranks = dp_->ranks();
    }
    dp_->Deliver(reports);
  }
}

void Engine::Impl::LoopFollower() {
  dist::ExpertParallel& ep = *options_.data_parallel;
  dist::Communicator& comm = *ep.comm();
  // A rank that times out leaves the ending of the job to rank 0, which answers its clients
  // first (engine/data_parallel.h); it ends the job itself only if rank 0 never does.
  comm.SetFailureHandler(
      [](const std::string&) { std::this_thread::sleep_for(std::chrono::seconds(30)); });
  engine::DpControl control;
  engine::DpReport report;
  std::vector<bool> ended;
  // Until rank 0's first message (it may still be loading) the wait is unbounded; after it,
  // a rank 0 silent past Communicator::RootSilenceLimit ends the job.
  for (bool heard = false;; heard = true) {
    comm.Broadcast(&dp_buffer_, /*bounded=*/heard);
    const Status s = engine::DecodeControl(dp_buffer_, &control);
    DSV4_CHECK_MSG(s.ok(), s.message().c_str());
    if (control.stop) break;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (engine::DpControl::Placed& p : control.placed) {
        if (p.rank != ep.rank()) continue;
        std::unique_ptr<Active> a = MakeActive(std::move(p.request), p.id);
        dp_streams_.push_back(a->stream);
        inbox_.push_back(std::move(a));
        ++queued_;
      }
      // Ids this rank does not run are ignored (DrainInbox).
      cancels_.insert(cancels_.end(), control.cancelled.begin(), control.cancelled.end());
    }
    DrainInbox();
    AgreedStep(control.step);
    // The events of this tick, in order, with rank 0's ids; ended streams are dropped.
    report.events.clear();
    ended.assign(dp_streams_.size(), false);
    for (size_t i = 0; i < dp_streams_.size(); ++i) {
      TokenEvent ev;
      bool timed_out = false;
      while (dp_streams_[i]->NextFor(&ev, std::chrono::milliseconds(0), &timed_out)) {
        ended[i] = ended[i] || ev.finished;
        report.events.push_back({dp_streams_[i]->id(), std::move(ev)});
      }
    }
    size_t kept = 0;
    for (size_t i = 0; i < dp_streams_.size(); ++i) {
      if (!ended[i]) dp_streams_[kept++] = std::move(dp_streams_[i]);
    }
    dp_streams_.resize(kept);
    FillReport(&report);
    engine::EncodeReport(report, &dp_buffer_);
    comm.GatherToRoot(dp_buffer_, nullptr, /*bounded=*/true);
  }
}

void Engine::Impl::AgreedStep(bool step) {
  dist::ExpertParallel& ep = *options_.data_parallel;
  const int64_t before = ep.stats().steps;
  if (step && !active_.empty()) Step();
  if (step && ep.stats().steps == before) {  // no forward of its own: zero rows
    const Status s = model_->lm->JoinExpertParallelStep(*pool_);
    DSV4_CHECK_MSG(s.ok(), s.message().c_str());
  }
  // The drafters' MoE layers exchange rows too: with this rank's own drafter calls done
  // (in Step), it joins the others' with zero rows until no rank has one left.
  if (step && spec_) {
    while (ep.AwaitDraftCall()) spec_->drafter().JoinExpertParallelCall(*pool_);
  }
}

int64_t Engine::Impl::SequenceKvBytes() const {
  int64_t bytes = 0;
  for (const auto& [id, a] : active_) bytes += KvBytesAt(a->seq.num_tokens());
  return bytes;
}

void Engine::Impl::FillReport(engine::DpReport* r) {
  const dist::ExchangeStats& x = options_.data_parallel->stats();
  r->has_work = !active_.empty();
  EngineRankStats& st = r->stats;
  st = {};
  st.rank = options_.data_parallel->rank();
  {
    std::lock_guard<std::mutex> lock(mu_);
    st.running = static_cast<int64_t>(scheduler_->num_running());
    st.waiting = static_cast<int64_t>(scheduler_->num_waiting());
    st.finished = stats_.finished;
    st.steps = stats_.steps;
    st.prompt_tokens = stats_.prompt_tokens;
    st.generated_tokens = stats_.generated_tokens;
  }
  st.joined_steps = x.steps - st.steps;
  st.kv_used_bytes = kv_->Stats().used_bytes;
  st.kv_sequence_bytes = SequenceKvBytes();
  st.exchange_bytes_sent = x.bytes_sent;
  st.exchange_bytes_received = x.bytes_received;
  st.exchange_seconds = x.exchange_s;
}

void Engine::Impl::FailDataParallel(const std::string& error) {
  const std::string message = "data-parallel serving stopped: " + error;
  {
    std::lock_guard<std::mutex> lock(mu_);
    unavailable_ = message;
  }
  dp_->EndAll(FinishReason::kError, message);
  for (auto& [id, a] : active_) {
    TokenEvent ev;
    ev.finished = true;
    ev.reason = FinishReason::kError;
    ev.error = message;
    a->stream->Push(std::move(ev));
  }
  // Clients in flight get their 503 and new requests are refused with it before the job ends.
  std::this_thread::sleep_for(std::chrono::seconds(2));
}

}  // namespace dsv4
