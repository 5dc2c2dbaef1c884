#include "runner/dspark_drafter.h"

#include <algorithm>
#include <string>

#include "core/check.h"

namespace dsv4::runner {

DsparkDrafter::DsparkDrafter(const v4::Model& target, const v4::DsparkWeights& w,
                             DsparkDrafterOptions options)
    : dspark_(target, w),
      ring_config_(dspark_.RingConfig(options.history >= 0 ? options.history
                                                           : target.config().sliding_window)),
      min_confidence_(options.min_confidence) {}

std::unique_ptr<DraftState> DsparkDrafter::NewState() const {
  return std::make_unique<DsparkDraftState>(ring_config_);
}

Status DsparkDrafter::Propose(ThreadPool& pool, DraftState& state,
                              std::span<const int32_t> tokens, std::span<const BF16> hidden,
                              int64_t k, std::vector<int32_t>* drafts) const {
  auto& st = static_cast<DsparkDraftState&>(state);
  drafts->clear();
  if (tokens.empty()) {
    return Status::InvalidArgument("DSpark drafter: no tokens (expected at least the sampled one)");
  }
  const int64_t done = st.num_tokens();
  const int64_t committed = static_cast<int64_t>(tokens.size()) - 1;
  if (committed < done) {
    return Status::FailedPrecondition(
        "DSpark drafter: the state has consumed " + std::to_string(done) + " positions but the "
        "target has committed " + std::to_string(committed) + " (Truncate it first)");
  }
  const int64_t width = dspark_.hidden_width();
  if (static_cast<int64_t>(hidden.size()) != (committed - done) * width) {
    return Status::InvalidArgument(
        "DSpark drafter: " + std::to_string(committed - done) + " newly committed positions need " +
        std::to_string(committed - done) + " hidden rows of " + std::to_string(width) +
        " values, got " + std::to_string(hidden.size()) + " values");
  }
  const checkpoint::ModelConfig& c = dspark_.config();
  const int32_t anchor = tokens.back();
  if (anchor < 0 || anchor >= c.vocab_size) {
    return Status::InvalidArgument("DSpark drafter: anchor token " + std::to_string(anchor) +
                                   " outside the vocabulary [0, " +
                                   std::to_string(c.vocab_size) + ")");
  }
  std::unique_lock<std::mutex> lock(ws_mu_, std::try_to_lock);
  v4::DsparkWorkspace* ws = lock.owns_lock() ? &ws_ : nullptr;
  if (committed > done) {
    const v4::Dspark::ContextItem item{&st.ring_, hidden};
    DSV4_RETURN_IF_ERROR(dspark_.Extend(pool, {&item, 1}, ws));
    // Writing position p overwrote the slots of position p - slots.
    st.intact_from_ = std::max(st.intact_from_, committed - ring_config_.sliding_window);
  }
  const int64_t S = dspark_.block_size();
  k = std::min(k, S);
  if (k <= 0 || committed + S > c.max_position_embeddings) return Status::Ok();
  const v4::Dspark::DraftItem item{&st.ring_, anchor, &st.block_, &st.confidence_, nullptr};
  // Valid by construction: a checked anchor, the config's noise id, a position below the limit.
  const Status s = dspark_.Draft(pool, {&item, 1}, ws);
  DSV4_CHECK_MSG(s.ok(), s.message());
  for (int64_t i = 0; i < k; ++i) {
    if (st.confidence_[static_cast<size_t>(i)] < min_confidence_) break;
    drafts->push_back(st.block_[static_cast<size_t>(i)]);
  }
  return Status::Ok();
}

void DsparkDrafter::JoinExpertParallelCall(ThreadPool& pool) const {
  std::unique_lock<std::mutex> lock(ws_mu_, std::try_to_lock);
  v4::DsparkWorkspace fresh;
  dspark_.JoinExpertParallelCall(pool, lock.owns_lock() ? &ws_ : &fresh);
}

void DsparkDrafter::Truncate(DraftState& state, int64_t n) const {
  auto& st = static_cast<DsparkDraftState&>(state);
  if (n >= st.num_tokens()) return;
  // Exact when the ring still holds every row the window at n reads: positions [n - W, n).
  const int64_t window = dspark_.config().sliding_window;
  if (n > 0 && std::max<int64_t>(0, n - window) >= st.intact_from_) {
    st.ring_.set_num_tokens(n);
    return;
  }
  st.ring_.Release();
  st.intact_from_ = 0;
}

RingWindowFormat DsparkDrafter::StateFormat() const {
  return {"DSpark", {'D', 'S', 'V', '4', 'D', 'S', 'P', 'S'}, dspark_.num_blocks(),
          dspark_.config().sliding_window};
}

Status DsparkDrafter::SaveState(const DraftState& state, std::vector<uint8_t>* out) const {
  const auto& st = static_cast<const DsparkDraftState&>(state);
  return SaveRingWindow(StateFormat(), st.ring_, st.intact_from_, out);
}

Result<std::unique_ptr<DraftState>> DsparkDrafter::RestoreState(
    std::span<const uint8_t> bytes) const {
  auto state = std::make_unique<DsparkDraftState>(ring_config_);
  DSV4_ASSIGN_OR_RETURN(state->intact_from_,
                        RestoreRingWindow(StateFormat(), bytes,
                                          dspark_.config().max_position_embeddings, &state->ring_));
  return std::unique_ptr<DraftState>(std::move(state));
}

}  // namespace dsv4::runner
