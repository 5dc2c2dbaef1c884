// Speculative decoding inside the engine's continuous batching (README "Speculative
// decoding"). After a step, each decoding request's drafter proposes up to K tokens to follow
// its last token; the scheduler puts [last token, drafts] into the next step's batch as k+1
// tokens of the same forward (Sequence::num_draft, ScheduledChunk::num_draft), with logits
// for every row. The engine then emits what sample::VerifyDrafts accepts (cut at a stop
// condition), and this class settles the rest: the sequence's KV state is rolled back to the
// accepted end (kv::SequenceState::RollbackTo; the state then equals, bit for bit, that of a
// sequence that only ever saw the accepted tokens), the drafter is told what was rejected,
// and the acceptance counters are kept.
//
// Drafters that read the target's hidden rows (Drafter::needs_hidden) are fed the rows of
// every position the target commits, chunk by chunk, prefill included. A sequence that
// continued from a cached prefix has no rows for that prefix: when a snapshot is taken, the
// drafter's state there is saved with it (Capture: the state after positions [0, p - 1) and
// the target's row of p - 1, engine/draft_snapshot.h), and a hit restores it (Resume), so the
// request drafts from its first step exactly as after prefilling the prefix. A drafter that
// cannot save its state (Drafter::saves_state), or an entry without one (taken by a request
// that did not speculate, or a version 1 file), leaves that request without drafts.
//
// In auto mode (EngineOptions::speculative_step_cost) each request's DraftSwitch pauses its
// drafting while it does not pay (draft_switch.h). A paused request's drafter keeps its
// place without running: the target's rows are carried (DraftSlot::carry, at most
// kMaxCarryRows) and consumed in one call when drafting resumes, a snapshot is taken, or the
// carry is full.
//
// Not thread-safe: the engine thread owns it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/bf16.h"
#include "core/status.h"
#include "core/thread_pool.h"
#include "dsv4/engine.h"
#include "engine/draft_switch.h"
#include "runner/causal_lm.h"
#include "runner/drafter.h"
#include "runner/loaded_model.h"
#include "sched/scheduler.h"
#include "sched/sequence.h"

namespace dsv4::engine {

// One request's side of speculative decoding (held by the engine next to its Sequence).
struct DraftSlot {
  std::unique_ptr<runner::DraftState> state;  // null: the request does not speculate
  std::vector<int32_t> drafts;  // proposed to follow the last token (num_draft of them)
  std::vector<int32_t> feed;    // the step's tokens: [last token, its scheduled drafts]
  std::vector<BF16> hidden;     // the step's target rows, BF16 [fed, hidden_width]
  // Target rows of positions [state->num_tokens(), that + carried) not consumed yet (a
  // restored prefix's last row; a paused request's rows), BF16 [carried, hidden_width].
  std::vector<BF16> carry;
  DraftSwitch drafting;         // auto mode's switch-off
  bool paused = false;          // paused by `drafting` (counted in spec_paused_now)
};

class Speculation {
 public:
  // The drafter `options` ask for on `model` (EngineOptions::speculative, draft_tokens,
  // drafter), or null when speculation is off; *summary says which ("mtp, 1 draft token",
  // "off (...)"). kAuto is off when the checkpoint has no drafter, when this build has no
  // implementation of it, or when the model's sequences cannot roll back. Errors:
  // InvalidArgument for draft_tokens < 0 or above the drafter's maximum, and for kMtp /
  // kDspark on a checkpoint without that drafter; the factory's
  // errors or runner::MakeDrafter's (Unimplemented: no implementation); FailedPrecondition
  // when the model cannot roll back or lacks the hidden rows the drafter needs.
  static Result<std::unique_ptr<Speculation>> Create(
      const runner::LoadedModel& model, const EngineOptions& options, std::string* summary,
      std::function<void(const std::string&)> warn);

  const runner::Drafter& drafter() const { return *drafter_; }
  int64_t draft_tokens() const { return k_; }

  // A new request: it speculates unless it asked not to or may emit only one token.
  void Start(const GenerationRequest& request, DraftSlot* slot) const;
  // The sequence's KV is gone (preemption): its drafts are dropped and its drafter restarts.
  void Restart(sched::Sequence* s, DraftSlot* slot);
  // The sequence continued from a cached prefix of s->num_computed tokens whose draft bytes
  // (PrefixSnapshot::draft) are `draft`: the drafter's state is restored from them, or, when
  // it cannot be (none, another drafter, a bad state), restarts (a drafter that needs hidden
  // rows then stops drafting for the request). Counted in spec_(un)restored_states.
  void Resume(sched::Sequence* s, DraftSlot* slot, std::span<const uint8_t> draft);
  // The draft bytes to keep with a snapshot taken of chunk c's sequence after the step
  // (at s->num_computed): the drafter consumes up to the snapshot's last position, which
  // the Propose after the step then continues from. Empty when the request does not
  // speculate or the drafter cannot save its state.
  std::vector<uint8_t> Capture(ThreadPool& pool, const sched::ScheduledChunk& c, DraftSlot* slot);
  // The request ended.
  void Finish(DraftSlot* slot);
  // A step ran: `seconds` of forward and drafting (auto mode's cost meter keeps pure decode
  // steps).
  void RecordStep(const sched::StepPlan& plan, double seconds);

  // Before the forward: a chunk with drafts feeds slot->feed = [last token, drafts] with
  // logits for every row and the sequence marked (BeginSpeculation); a drafter that needs
  // the target's rows gets them in slot->hidden.
  void Prepare(const sched::ScheduledChunk& c, DraftSlot* slot,
               runner::CausalLm::BatchItem* item);
  // After a chunk with drafts was verified: `accepted` drafts matched the target, and the
  // first `kept` of them (fewer when a stop condition cut the run) keep their KV; the
  // sequence is rolled back to just after them, the drafter hears of the rejection, and
  // the counters grow. Before Sequence::AppendVerified.
  void Settle(const sched::ScheduledChunk& c, int64_t accepted, int64_t kept, DraftSlot* slot);
  // After the step, for a chunk whose request goes on: the drafter consumes the committed
  // positions (with their rows) and, when the chunk sampled, proposes the next step's drafts
  // (at most `max_advance` - 1, the positions the next step may compute).
  void Propose(ThreadPool& pool, const sched::ScheduledChunk& c, int64_t max_advance,
               DraftSlot* slot);

  // Fills the spec_* fields of `stats` (its vectors keep their capacity).
  void FillStats(EngineStats* stats) const;

 private:
  static constexpr int64_t kMaxCarryRows = 256;

  Speculation(std::unique_ptr<runner::Drafter> drafter, int64_t k, int64_t vocab_size,
              int64_t hidden_width, bool adaptive, std::function<double(int64_t)> step_cost,
              std::function<void(const std::string&)> warn);
  void Stop(sched::Sequence* s, DraftSlot* slot);
  void Unpause(DraftSlot* slot);
  // The drafter consumes positions [state->num_tokens(), upto) (the carried rows, then the
  // step's from c.begin) and proposes up to k drafts to follow tokens[upto]. Stops the
  // request's drafting (with one warning) when the drafter fails.
  bool Consume(ThreadPool& pool, const sched::ScheduledChunk& c, DraftSlot* slot, int64_t upto,
               int64_t k);
  // Appends the step's rows of positions [the carry's end, upto) to slot->carry.
  void CarryTo(const sched::ScheduledChunk& c, DraftSlot* slot, int64_t upto) const;
  int64_t Carried(const DraftSlot& slot) const;

  std::unique_ptr<runner::Drafter> drafter_;
  int64_t k_;
  int64_t vocab_size_;
  int64_t width_;  // target hidden row values (0: the drafter needs none)
  bool adaptive_;
  StepCostMeter meter_;
  std::function<double(int64_t)> cost_;
  double draft_seconds_ = 0;  // drafting time of the current step
  int64_t restored_ = 0, unrestored_ = 0;
  int64_t paused_ = 0, paused_requests_ = 0, paused_now_ = 0;
  std::function<void(const std::string&)> warn_;
  bool warned_ = false, warned_restore_ = false;
  int64_t verifications_ = 0, drafted_ = 0, accepted_ = 0;
  std::vector<int64_t> drafted_at_, accepted_at_;  // [k_]
};

}  // namespace dsv4::engine
