#include "engine/speculation.h"

#include <algorithm>
#include <chrono>
#include <span>
#include <utility>

#include "checkpoint/config.h"
#include "core/check.h"
#include "engine/draft_snapshot.h"
#include "runner/make_drafter.h"

namespace dsv4 {

const char* SpeculativeModeName(SpeculativeMode m) {
  switch (m) {
    case SpeculativeMode::kAuto: return "auto";
    case SpeculativeMode::kOff: return "off";
    case SpeculativeMode::kMtp: return "mtp";
    case SpeculativeMode::kDspark: return "dspark";
  }
  return "?";
}

double EngineStats::spec_acceptance_rate() const {
  return spec_draft_tokens > 0
             ? static_cast<double>(spec_accepted_tokens) / static_cast<double>(spec_draft_tokens)
             : 0.0;
}

double EngineStats::spec_mean_accepted_length() const {
  return spec_verifications > 0 ? 1.0 + static_cast<double>(spec_accepted_tokens) /
                                            static_cast<double>(spec_verifications)
                                : 0.0;
}

}  // namespace dsv4

namespace dsv4::engine {
namespace {

std::string DraftCount(int64_t k) {
  return std::to_string(k) + (k == 1 ? " draft token" : " draft tokens");
}

// The drafter `o` asks for on `m`; null (with the reason in *off) when kAuto finds none to run.
Result<std::unique_ptr<runner::Drafter>> PickDrafter(const runner::LoadedModel& m,
                                                     const EngineOptions& o, std::string* off) {
  if (o.drafter) return o.drafter(m);
  if (o.speculative == SpeculativeMode::kAuto) {
    if (m.drafter == checkpoint::DraftFamily::kNone) {
      *off = "the checkpoint has no drafter";
      return std::unique_ptr<runner::Drafter>();
    }
    // A drafter this build cannot run on this model (DSpark; V3.2's MTP layer) leaves
    // speculation off rather than failing.
    Result<std::unique_ptr<runner::Drafter>> d = runner::MakeDrafter(m, m.drafter);
    if (d.status().code() == StatusCode::kUnimplemented ||
        d.status().code() == StatusCode::kFailedPrecondition) {
      *off = d.status().message();
      return std::unique_ptr<runner::Drafter>();
    }
    return d;
  }
  const checkpoint::DraftFamily want = o.speculative == SpeculativeMode::kMtp
                                           ? checkpoint::DraftFamily::kMtp
                                           : checkpoint::DraftFamily::kDspark;
  if (m.drafter != want) {
    return Status::InvalidArgument(
        std::string("speculative decoding '") + SpeculativeModeName(o.speculative) + "': " +
        m.name + " has no " + std::string(checkpoint::DraftFamilyName(want)) +
        " drafter (its checkpoint's drafter: " +
        std::string(checkpoint::DraftFamilyName(m.drafter)) + ")");
  }
  return runner::MakeDrafter(m, want);
}

}  // namespace

Result<std::unique_ptr<Speculation>> Speculation::Create(
    const runner::LoadedModel& model, const EngineOptions& o, std::string* summary,
    std::function<void(const std::string&)> warn) {
  if (o.draft_tokens < 0) {
    return Status::InvalidArgument("draft tokens must be >= 0 (0: the drafter's maximum), got " +
                                   std::to_string(o.draft_tokens));
  }
  *summary = "off";
  if (o.speculative == SpeculativeMode::kOff) return std::unique_ptr<Speculation>();
  std::string off;
  DSV4_ASSIGN_OR_RETURN(std::unique_ptr<runner::Drafter> drafter, PickDrafter(model, o, &off));
  if (drafter == nullptr) {
    *summary = "off (" + off + ")";
    return std::unique_ptr<Speculation>();
  }
  const std::string name(drafter->name());
  const bool asked = o.drafter || o.speculative != SpeculativeMode::kAuto;
  const std::unique_ptr<kv::SequenceState> probe = model.lm->NewSequence();
  if (!probe->supports_rollback()) {
    const std::string why = model.name + "'s sequences cannot roll back rejected drafts";
    if (!asked) {
      *summary = "off (" + why + ")";
      return std::unique_ptr<Speculation>();
    }
    return Status::FailedPrecondition("speculative decoding with the " + name +
                                      " drafter: " + why);
  }
  if (drafter->needs_hidden() && model.lm->hidden_width(drafter->hidden_rows()) == 0) {
    return Status::FailedPrecondition("the " + name + " drafter reads the target's hidden "
                                      "states, which " + model.name + " does not provide");
  }
  const int64_t max = drafter->max_draft_tokens();
  DSV4_CHECK_MSG(max >= 1, name);
  int64_t k = o.draft_tokens == 0 ? max : o.draft_tokens;
  if (k > max) {
    return Status::InvalidArgument("draft tokens " + std::to_string(k) + " exceed what the " +
                                   name + " drafter proposes (at most " +
                                   std::to_string(max) + ")");
  }
  // A step feeds 1 + k positions that a rollback may take back; the model bounds how many
  // (V4: the window and the HCA ratio). The drafter's maximum gives way to it; an explicit
  // K does not.
  Status marked = probe->BeginSpeculation(1 + k);
  while (!marked.ok() && o.draft_tokens == 0 && k > 1) {
    marked = probe->BeginSpeculation(1 + --k);
  }
  if (!marked.ok()) {
    return Status::InvalidArgument("draft tokens " + std::to_string(k) + ": " + model.name +
                                   "'s sequences cannot take back " + std::to_string(1 + k) +
                                   " positions: " + marked.message());
  }
  probe->EndSpeculation();
  *summary = name + ", " + DraftCount(k);
  // Auto mode pauses drafting where it does not pay; an explicit drafter always drafts.
  const bool adaptive = o.speculative == SpeculativeMode::kAuto &&
                        (!o.drafter || o.speculative_step_cost);
  if (adaptive) *summary += ", paused while it does not pay";
  const int64_t width =
      drafter->needs_hidden() ? model.lm->hidden_width(drafter->hidden_rows()) : 0;
  return std::unique_ptr<Speculation>(new Speculation(
      std::move(drafter), k, model.lm->config().vocab_size, width, adaptive,
      o.speculative_step_cost, std::move(warn)));
}

Speculation::Speculation(std::unique_ptr<runner::Drafter> drafter, int64_t k, int64_t vocab_size,
                         int64_t hidden_width, bool adaptive,
                         std::function<double(int64_t)> step_cost,
                         std::function<void(const std::string&)> warn)
    : drafter_(std::move(drafter)),
      k_(k),
      vocab_size_(vocab_size),
      width_(hidden_width),
      adaptive_(adaptive),
      cost_(step_cost ? std::move(step_cost)
                      : std::function<double(int64_t)>([this](int64_t n) { return meter_.Cost(n); })),
      warn_(std::move(warn)),
      drafted_at_(static_cast<size_t>(k), 0),
      accepted_at_(static_cast<size_t>(k), 0) {}

void Speculation::Start(const GenerationRequest& request, DraftSlot* slot) const {
  // A request of one new token can never verify a draft: its drafter would only consume
  // the prompt (for MTP, one more block over every prompt position) for nothing.
  if (request.speculative && request.stop.max_new_tokens > 1) slot->state = drafter_->NewState();
}

void Speculation::Unpause(DraftSlot* slot) {
  if (!slot->paused) return;
  slot->paused = false;
  --paused_now_;
}

void Speculation::Stop(sched::Sequence* s, DraftSlot* slot) {
  slot->state.reset();
  slot->drafts.clear();
  slot->carry.clear();
  s->num_draft = 0;
  Unpause(slot);
}

void Speculation::Finish(DraftSlot* slot) { Unpause(slot); }

void Speculation::Restart(sched::Sequence* s, DraftSlot* slot) {
  slot->drafts.clear();
  slot->carry.clear();
  s->num_draft = 0;
  if (slot->state) drafter_->Truncate(*slot->state, 0);
}

void Speculation::Resume(sched::Sequence* s, DraftSlot* slot, std::span<const uint8_t> draft) {
  if (slot->state == nullptr) return;
  Restart(s, slot);  // what the state consumed is not this sequence's past any more
  if (!drafter_->needs_hidden() && !drafter_->saves_state()) return;  // it reads tokens only
  auto fail = [&](const std::string& why) {
    ++unrestored_;
    if (!why.empty() && !warned_restore_) {
      warn_("speculative decoding: the " + std::string(drafter_->name()) + " drafter's state " +
            "of a cached prefix was not restored (the request drafts without it): " + why);
      warned_restore_ = true;
    }
  };
  if (draft.empty() || !drafter_->saves_state()) return fail("");
  Result<DraftSnapshot> d = DecodeDraftSnapshot(draft);
  if (!d.ok()) return fail(d.status().message());
  if (d->drafter != drafter_->name()) {
    return fail("it was saved by the " + d->drafter + " drafter");
  }
  if (d->position != s->num_computed - 1 || static_cast<int64_t>(d->row.size()) != width_) {
    return fail("it is at position " + std::to_string(d->position) + " with a row of " +
                std::to_string(d->row.size()) + " values, expected " +
                std::to_string(s->num_computed - 1) + " and " + std::to_string(width_));
  }
  Result<std::unique_ptr<runner::DraftState>> state = drafter_->RestoreState(d->state);
  if (!state.ok()) return fail(state.status().message());
  if ((*state)->num_tokens() != d->position) {
    return fail("the restored state has consumed " + std::to_string((*state)->num_tokens()) +
                " positions, expected " + std::to_string(d->position));
  }
  slot->state = std::move(state).value();
  slot->carry = std::move(d->row);
  ++restored_;
}

int64_t Speculation::Carried(const DraftSlot& slot) const {
  return width_ > 0 ? static_cast<int64_t>(slot.carry.size()) / width_ : 0;
}

void Speculation::CarryTo(const sched::ScheduledChunk& c, DraftSlot* slot, int64_t upto) const {
  const int64_t end = slot->state->num_tokens() + Carried(*slot);
  DSV4_CHECK(end >= c.begin && upto >= end && upto <= c.seq->num_computed);
  const auto w = static_cast<size_t>(width_);
  const auto rows = std::span<const BF16>(slot->hidden).subspan(
      static_cast<size_t>(end - c.begin) * w, static_cast<size_t>(upto - end) * w);
  slot->carry.insert(slot->carry.end(), rows.begin(), rows.end());
}

bool Speculation::Consume(ThreadPool& pool, const sched::ScheduledChunk& c, DraftSlot* slot,
                          int64_t upto, int64_t k) {
  sched::Sequence* s = c.seq;
  std::span<const BF16> rows;
  if (width_ > 0) {
    const int64_t from = slot->state->num_tokens();
    if (slot->carry.empty()) {
      DSV4_CHECK(from >= c.begin && upto >= from);
      rows = std::span<const BF16>(slot->hidden)
                 .subspan(static_cast<size_t>((from - c.begin) * width_),
                          static_cast<size_t>((upto - from) * width_));
    } else {
      CarryTo(c, slot, upto);
      rows = slot->carry;
    }
  }
  const std::span<const int32_t> tokens(s->tokens.data(), static_cast<size_t>(upto + 1));
  const Status st = drafter_->Propose(pool, *slot->state, tokens, rows, k, &slot->drafts);
  slot->carry.clear();
  if (!st.ok()) {
    // A drafter only changes speed: the request goes on without it.
    if (!warned_) {
      warn_("speculative decoding stopped for a request: the " + std::string(drafter_->name()) +
            " drafter failed: " + st.message());
      warned_ = true;
    }
    Stop(s, slot);
    return false;
  }
  DSV4_CHECK(slot->state->num_tokens() == upto);
  return true;
}

std::vector<uint8_t> Speculation::Capture(ThreadPool& pool, const sched::ScheduledChunk& c,
                                          DraftSlot* slot) {
  const int64_t p = c.seq->num_computed;
  if (slot->state == nullptr || !drafter_->saves_state() || p <= c.begin) return {};
  // The state after positions [0, p - 1), and the target's row of p - 1 (made with token p,
  // past the prefix: the request that continues from it brings its own).
  if (!Consume(pool, c, slot, p - 1, 0)) return {};
  DraftSnapshot d;
  d.drafter = std::string(drafter_->name());
  d.position = p - 1;
  if (width_ > 0) {
    const auto row = std::span<const BF16>(slot->hidden).subspan(
        static_cast<size_t>((p - 1 - c.begin) * width_), static_cast<size_t>(width_));
    d.row.assign(row.begin(), row.end());
  }
  if (const Status st = drafter_->SaveState(*slot->state, &d.state); !st.ok()) {
    if (!warned_) {
      warn_("speculative decoding: the " + std::string(drafter_->name()) + " drafter's state " +
            "was not saved with a cached prefix: " + st.message());
      warned_ = true;
    }
    return {};
  }
  return EncodeDraftSnapshot(d);
}

void Speculation::Prepare(const sched::ScheduledChunk& c, DraftSlot* slot,
                          runner::CausalLm::BatchItem* item) {
  if (slot->state == nullptr) return;
  sched::Sequence* s = c.seq;
  if (width_ > 0) {
    // Its rows start where the drafter (and its carried rows) stopped; a sequence that
    // skipped positions (a cached prefix without a restored state) cannot give them.
    if (slot->state->num_tokens() + Carried(*slot) != c.begin) {
      Stop(s, slot);
      return;
    }
    item->hidden = &slot->hidden;
    item->hidden_rows = drafter_->hidden_rows();
  }
  if (c.num_draft == 0) return;
  DSV4_CHECK(c.count == 1 && c.num_draft <= static_cast<int64_t>(slot->drafts.size()));
  slot->feed.assign(1, s->tokens[static_cast<size_t>(c.begin)]);
  slot->feed.insert(slot->feed.end(), slot->drafts.begin(), slot->drafts.begin() + c.num_draft);
  const Status marked = s->state->BeginSpeculation(1 + c.num_draft);
  DSV4_CHECK_MSG(marked.ok(), marked.message());
  item->tokens = slot->feed;
  item->mode = runner::LogitsMode::kAll;
}

void Speculation::Settle(const sched::ScheduledChunk& c, int64_t accepted, int64_t kept,
                         DraftSlot* slot) {
  DSV4_CHECK(c.num_draft > 0 && kept <= accepted && accepted <= c.num_draft);
  sched::Sequence* s = c.seq;
  if (kept == c.num_draft) {
    s->state->EndSpeculation();
  } else {
    const Status rolled = s->state->RollbackTo(c.begin + c.count + kept);
    DSV4_CHECK_MSG(rolled.ok(), rolled.message());
    if (slot->state) drafter_->Truncate(*slot->state, c.begin + c.count + kept);
  }
  ++verifications_;
  drafted_ += c.num_draft;
  accepted_ += accepted;
  for (int64_t i = 0; i < c.num_draft; ++i) ++drafted_at_[static_cast<size_t>(i)];
  for (int64_t i = 0; i < accepted; ++i) ++accepted_at_[static_cast<size_t>(i)];
  if (adaptive_ && slot->drafting.Observe(c.num_draft, accepted, cost_)) {
    ++paused_;
    if (slot->drafting.pauses() == 1) ++paused_requests_;
    if (!slot->paused) ++paused_now_;
    slot->paused = true;
  }
}

void Speculation::Propose(ThreadPool& pool, const sched::ScheduledChunk& c, int64_t max_advance,
                          DraftSlot* slot) {
  sched::Sequence* s = c.seq;
  slot->drafts.clear();
  s->num_draft = 0;
  if (slot->state == nullptr) return;
  const auto t0 = std::chrono::steady_clock::now();
  // The next step emits up to 1 + k tokens: no more than the request may still have.
  int64_t k = c.sample ? std::min({k_, s->max_tokens - s->num_tokens() - 1, max_advance - 1})
                       : 0;
  if (adaptive_) k = slot->drafting.MaxDrafts(k);
  if (adaptive_ && !slot->drafting.drafting()) {
    // Paused: the next step goes without drafts (the last one of the pause when the
    // countdown ends: the step after it drafts again).
    k = 0;
    if (slot->drafting.Tick()) Unpause(slot);
    // The rows wait in the carry (consumed at once when drafting resumes).
    if (width_ > 0 && Carried(*slot) + (s->num_computed - c.begin) <= kMaxCarryRows) {
      CarryTo(c, slot, s->num_computed);
      return;
    }
  }
  if (k <= 0 && width_ == 0) return;  // nothing to draft, nothing to consume now
  if (!Consume(pool, c, slot, s->num_computed, std::max<int64_t>(k, 0))) return;
  DSV4_CHECK(static_cast<int64_t>(slot->drafts.size()) <= std::max<int64_t>(k, 0));
  for (int32_t d : slot->drafts) {
    DSV4_CHECK_MSG(d >= 0 && d < vocab_size_, "the " + std::string(drafter_->name()) +
                                                  " drafter proposed token " +
                                                  std::to_string(d) + " outside the vocabulary");
  }
  s->num_draft = static_cast<int64_t>(slot->drafts.size());
  draft_seconds_ +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void Speculation::RecordStep(const sched::StepPlan& plan, double seconds) {
  const double drafting = std::exchange(draft_seconds_, 0.0);
  if (!adaptive_ || plan.chunks.empty()) return;
  int64_t extra = 0;
  for (const sched::ScheduledChunk& c : plan.chunks) {
    if (c.count != 1 || !c.sample) return;  // prefill in the step: not a decode step's cost
    extra += c.num_draft;
  }
  meter_.Record(static_cast<int64_t>(plan.chunks.size()), extra, seconds + drafting);
}

void Speculation::FillStats(EngineStats* st) const {
  st->spec_verifications = verifications_;
  st->spec_draft_tokens = drafted_;
  st->spec_accepted_tokens = accepted_;
  st->spec_drafted_at.assign(drafted_at_.begin(), drafted_at_.end());
  st->spec_accepted_at.assign(accepted_at_.begin(), accepted_at_.end());
  st->spec_restored_states = restored_;
  st->spec_unrestored_states = unrestored_;
  st->spec_paused = paused_;
  st->spec_paused_requests = paused_requests_;
  st->spec_paused_now = paused_now_;
}

}  // namespace dsv4::engine
