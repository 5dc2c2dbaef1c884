#include "sched/scheduler.h"

#include <algorithm>

#include "core/check.h"

namespace dsv4::sched {
namespace {

bool ByArrival(const Sequence* a, const Sequence* b) { return a->arrival < b->arrival; }

}  // namespace

Scheduler::Scheduler(SchedulerOptions options, kv::KvManager* kv, std::function<bool()> reclaim)
    : options_(options), kv_(kv), reclaim_(std::move(reclaim)) {
  DSV4_CHECK(options_.max_num_batched_tokens > 0 && options_.max_num_seqs > 0);
}

void Scheduler::Add(Sequence* s) {
  s->status = SeqStatus::kWaiting;
  waiting_.insert(std::upper_bound(waiting_.begin(), waiting_.end(), s, ByArrival), s);
}

void Scheduler::Remove(Sequence* s) {
  std::erase(running_, s);
  std::erase(waiting_, s);
  if (s->state) s->state->Release();
  s->status = SeqStatus::kFinished;
}

bool Scheduler::Admissible(const Sequence& s) {
  // Stage 1: the whole prompt (and the first generated token) must fit in the free KV bytes,
  // so an admitted prefill can finish without preempting anyone. Cached prefixes give way.
  if (kv_ == nullptr) return true;
  const int64_t grow = kv_->layout().GrowthBytes(s.num_computed, s.num_tokens() + 1);
  while (grow > kv_->available_bytes()) {
    if (!Reclaim()) return false;
  }
  return true;
}

void Scheduler::Preempt(Sequence* victim, StepPlan* plan, int64_t* budget) {
  for (auto it = plan->chunks.begin(); it != plan->chunks.end(); ++it) {
    if (it->seq == victim) {  // un-schedule it from this step
      *budget += it->count + it->num_draft;
      plan->num_tokens -= it->count + it->num_draft;
      plan->chunks.erase(it);
      break;
    }
  }
  std::erase(running_, victim);
  victim->state->Release();
  victim->num_computed = 0;
  ++victim->num_preemptions;
  ++num_preemptions_;
  plan->preempted.push_back(victim);
  Add(victim);
}

bool Scheduler::ReserveOrPreempt(Sequence* s, int64_t tokens, StepPlan* plan, int64_t* budget) {
  while (!s->state->Reserve(tokens).ok()) {
    if (Reclaim()) continue;  // cached prefixes go first
    // Recompute the newest running sequence (possibly s itself) to make room.
    Sequence* victim = running_.back();
    Preempt(victim, plan, budget);
    if (victim == s) return false;
  }
  return true;
}

StepPlan Scheduler::Plan() {
  StepPlan plan;
  int64_t budget = options_.max_num_batched_tokens;
  auto schedule = [&](Sequence* s, int64_t count) {
    plan.chunks.push_back({s, s->num_computed, count, s->num_computed + count == s->num_tokens()});
    plan.num_tokens += count;
    budget -= count;
  };
  // Running sequences, oldest first: decode tokens first (one each), then their drafts (as
  // many as the budget holds), then prefill chunks.
  for (int pass = 0; pass < 2; ++pass) {
    if (pass == 1) AddDrafts(&plan, &budget);
    for (size_t i = 0; i < running_.size() && budget > 0; ++i) {
      Sequence* s = running_[i];
      const bool decode = s->remaining() == 1;
      if ((pass == 0) != decode || s->remaining() == 0) continue;
      const bool scheduled = std::any_of(plan.chunks.begin(), plan.chunks.end(),
                                         [&](const ScheduledChunk& c) { return c.seq == s; });
      if (scheduled) continue;
      const int64_t count = std::min(s->chunk_limit(), budget);
      if (!ReserveOrPreempt(s, s->num_computed + count, &plan, &budget)) {
        --i;  // s left running_; the next sequence moved into slot i
        continue;
      }
      schedule(s, count);
    }
  }
  // Waiting sequences in arrival order; the head blocks the rest (no skipping ahead).
  while (!waiting_.empty() && budget > 0 &&
         static_cast<int64_t>(running_.size()) < options_.max_num_seqs) {
    Sequence* s = waiting_.front();
    if (on_admit_ && s->num_computed == 0) on_admit_(s);
    if (!Admissible(*s)) break;
    const int64_t count = std::min(s->chunk_limit(), budget);
    // Admission reserves the whole prompt at once, so admitted requests never have to preempt
    // each other to finish their prefill (the count admitted is exactly what the budget holds).
    Status reserved = s->state->Reserve(s->num_tokens());
    while (!reserved.ok() && Reclaim()) reserved = s->state->Reserve(s->num_tokens());
    if (!reserved.ok()) break;
    waiting_.pop_front();
    s->status = SeqStatus::kRunning;
    running_.insert(std::upper_bound(running_.begin(), running_.end(), s, ByArrival), s);
    schedule(s, count);
  }
  ReserveDrafts(&plan);
  return plan;
}

void Scheduler::AddDrafts(StepPlan* plan, int64_t* budget) {
  for (ScheduledChunk& c : plan->chunks) {
    c.num_draft = std::min(c.seq->num_draft, *budget);
    plan->num_tokens += c.num_draft;
    *budget -= c.num_draft;
  }
}

void Scheduler::ReserveDrafts(StepPlan* plan) {
  for (ScheduledChunk& c : plan->chunks) {
    if (c.num_draft == 0) continue;
    if (c.seq->state->Reserve(c.begin + c.count + c.num_draft).ok()) continue;
    plan->num_tokens -= c.num_draft;  // this step verifies no draft of it
    c.num_draft = 0;
  }
}

void Scheduler::Commit(const StepPlan& plan) {
  for (const ScheduledChunk& c : plan.chunks) {
    DSV4_CHECK(c.seq->num_computed == c.begin);
    c.seq->num_computed += c.count;
  }
}

}  // namespace dsv4::sched
