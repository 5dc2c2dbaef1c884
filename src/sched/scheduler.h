// Decides each step which sequences run and how many of their tokens (nano-vllm / vLLM v1
// style): every sequence's num_computed catches up to its token count, so chunked prefill,
// decode and a mix of both in one step fall out of one rule. Two-stage admission (does the
// whole prompt fit in KV memory, then the step's token budget), FCFS with no skipping (no
// starvation), preemption by recompute when pages run out. The scheduler reserves every page
// a step needs before the step runs; it never touches tensors.
// Speculative decoding: a decoding sequence with drafts (Sequence::num_draft) gets them
// scheduled after its token, within the token budget (decode tokens first, then drafts, then
// prefill) and only in KV pages that are free once everything else is reserved: drafts never
// preempt a sequence or evict a cached prefix; when their pages do not fit they wait.
// Not thread-safe: the engine thread owns it.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <vector>

#include "kv/kv_manager.h"
#include "sched/sequence.h"

namespace dsv4::sched {

struct SchedulerOptions {
  int64_t max_num_batched_tokens = 256;  // tokens per step (all sequences)
  int64_t max_num_seqs = 64;             // running sequences
};

struct ScheduledChunk {
  Sequence* seq = nullptr;
  int64_t begin = 0;    // first token index (= seq->num_computed at planning)
  int64_t count = 0;
  bool sample = false;  // the chunk reaches the last known token: sample the next one
  // Drafted tokens fed after the chunk's `count` known ones (decode chunks only; their
  // positions' pages are reserved). Commit leaves them to the engine's verification.
  int64_t num_draft = 0;
};

struct StepPlan {
  std::vector<ScheduledChunk> chunks;
  std::vector<Sequence*> preempted;  // released and sent back to waiting this step
  int64_t num_tokens = 0;  // fed: the chunks' count + num_draft
};

class Scheduler {
 public:
  // `kv` gives the page math and free bytes for admission; it must be the manager the
  // sequences' states draw from. `reclaim`, when given, frees cached memory (one prefix-cache
  // entry) and returns false when there is nothing left to free; the scheduler calls it
  // before refusing admission or preempting.
  Scheduler(SchedulerOptions options, kv::KvManager* kv, std::function<bool()> reclaim = {});

  // Called for a waiting sequence with nothing computed just before it is admitted (the
  // engine restores a cached prefix there, which may advance num_computed).
  void set_on_admit(std::function<void(Sequence*)> f) { on_admit_ = std::move(f); }

  // A new sequence joins the waiting queue.
  void Add(Sequence* s);
  // A finished or cancelled sequence leaves: its pages are freed.
  void Remove(Sequence* s);

  StepPlan Plan();
  // Advances num_computed by each chunk's known tokens (after the model ran it).
  void Commit(const StepPlan& plan);

  size_t num_waiting() const { return waiting_.size(); }
  size_t num_running() const { return running_.size(); }
  int64_t num_preemptions() const { return num_preemptions_; }

 private:
  bool ReserveOrPreempt(Sequence* s, int64_t tokens, StepPlan* plan, int64_t* budget);
  void Preempt(Sequence* victim, StepPlan* plan, int64_t* budget);
  // Drafts of the decode chunks scheduled so far, oldest first, within the budget.
  void AddDrafts(StepPlan* plan, int64_t* budget);
  // Pages for the drafts, from free memory only: drafts that do not fit are not verified.
  void ReserveDrafts(StepPlan* plan);
  bool Admissible(const Sequence& s);
  bool Reclaim() { return reclaim_ && reclaim_(); }

  SchedulerOptions options_;
  kv::KvManager* kv_;
  std::function<bool()> reclaim_;
  std::function<void(Sequence*)> on_admit_;
  std::deque<Sequence*> waiting_;   // by arrival
  std::vector<Sequence*> running_;  // by arrival
  int64_t num_preemptions_ = 0;
};

}  // namespace dsv4::sched
