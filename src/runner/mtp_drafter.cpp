#include "runner/mtp_drafter.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "core/check.h"

namespace dsv4::runner {
namespace {

int32_t ArgMax(const std::vector<float>& logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

}  // namespace

MtpDrafter::MtpDrafter(const v4::Model& target, const v4::MtpWeights& w,
                       MtpDrafterOptions options)
    : mtp_(target, w),
      ring_config_(mtp_.RingConfig(options.history >= 0 ? options.history
                                                        : target.config().sliding_window)),
      max_draft_tokens_(std::max<int64_t>(1, options.max_draft_tokens)) {}

std::unique_ptr<DraftState> MtpDrafter::NewState() const {
  return std::make_unique<MtpDraftState>(ring_config_);
}

Status MtpDrafter::Run(ThreadPool& pool, MtpDraftState& st, const v4::Mtp::BatchItem& item) const {
  const int64_t pos0 = st.ring_.num_tokens();
  const int64_t n = static_cast<int64_t>(item.next_tokens.size());
  std::unique_lock<std::mutex> lock(ws_mu_, std::try_to_lock);
  DSV4_RETURN_IF_ERROR(
      mtp_.ForwardBatch(pool, {&item, 1}, lock.owns_lock() ? &ws_ : nullptr));
  // Writing position p overwrote the slot of position p - slots.
  if (n > 0) {
    st.intact_from_ = std::max(st.intact_from_, pos0 + n - ring_config_.sliding_window);
  }
  return Status::Ok();
}

Status MtpDrafter::Propose(ThreadPool& pool, DraftState& state, std::span<const int32_t> tokens,
                           std::span<const BF16> hidden, int64_t k,
                           std::vector<int32_t>* drafts) const {
  auto& st = static_cast<MtpDraftState&>(state);
  drafts->clear();
  if (tokens.empty()) {
    return Status::InvalidArgument("MTP drafter: no tokens (expected at least the sampled one)");
  }
  const int64_t done = st.num_tokens();
  const int64_t committed = static_cast<int64_t>(tokens.size()) - 1;
  if (committed < done) {
    return Status::FailedPrecondition(
        "MTP drafter: the state has consumed " + std::to_string(done) + " positions but the "
        "target has committed " + std::to_string(committed) + " (Truncate it first)");
  }
  const int64_t width = mtp_.hidden_width();
  if (static_cast<int64_t>(hidden.size()) != (committed - done) * width) {
    return Status::InvalidArgument(
        "MTP drafter: " + std::to_string(committed - done) + " newly committed positions need " +
        std::to_string(committed - done) + " hidden rows of " + std::to_string(width) +
        " values, got " + std::to_string(hidden.size()) + " values");
  }
  if (committed == done) return Status::Ok();
  k = std::min(k, max_draft_tokens_);
  // Positions done .. committed-1: X_t and token t+1; the last row drafts token committed+1.
  v4::Mtp::BatchItem item{&st.ring_, hidden, tokens.subspan(done + 1),
                          k > 0 ? models::LogitsMode::kLast : models::LogitsMode::kNone,
                          &st.logits_, k > 1 ? &st.x_ : nullptr};
  DSV4_RETURN_IF_ERROR(Run(pool, st, item));
  if (k <= 0) return Status::Ok();
  drafts->push_back(ArgMax(st.logits_));
  // Chained drafts: the block's own streams and the previous draft, at the next position.
  const checkpoint::ModelConfig& c = mtp_.config();
  for (int64_t i = 1; i < k && committed + i - 1 < c.max_position_embeddings; ++i) {
    const v4::Mtp::BatchItem next{&st.ring_, st.x_, {&drafts->back(), 1},
                                  models::LogitsMode::kLast, &st.logits_, &st.x_next_};
    // Valid by construction: an argmax id, a position below the limit, the ring's own
    // unbounded page pool.
    const Status s = Run(pool, st, next);
    DSV4_CHECK(s.ok());
    std::swap(st.x_, st.x_next_);
    drafts->push_back(ArgMax(st.logits_));
  }
  st.ring_.set_num_tokens(committed);
  return Status::Ok();
}

void MtpDrafter::JoinExpertParallelCall(ThreadPool& pool) const {
  std::unique_lock<std::mutex> lock(ws_mu_, std::try_to_lock);
  v4::MtpWorkspace fresh;
  mtp_.JoinExpertParallelCall(pool, lock.owns_lock() ? &ws_ : &fresh);
}

void MtpDrafter::Truncate(DraftState& state, int64_t n) const {
  auto& st = static_cast<MtpDraftState&>(state);
  if (n >= st.num_tokens()) return;
  // Exact when the ring still holds every row the window at n reads: positions [n - W, n).
  const int64_t window = mtp_.config().sliding_window;
  if (n > 0 && std::max<int64_t>(0, n - window) >= st.intact_from_) {
    st.ring_.set_num_tokens(n);
    return;
  }
  st.ring_.Release();
  st.intact_from_ = 0;
}


RingWindowFormat MtpDrafter::StateFormat() const {
  return {"MTP", {'D', 'S', 'V', '4', 'M', 'T', 'P', 'S'}, 1, mtp_.config().sliding_window};
}

Status MtpDrafter::SaveState(const DraftState& state, std::vector<uint8_t>* out) const {
  const auto& st = static_cast<const MtpDraftState&>(state);
  return SaveRingWindow(StateFormat(), st.ring_, st.intact_from_, out);
}

Result<std::unique_ptr<DraftState>> MtpDrafter::RestoreState(std::span<const uint8_t> bytes) const {
  auto state = std::make_unique<MtpDraftState>(ring_config_);
  DSV4_ASSIGN_OR_RETURN(state->intact_from_,
                        RestoreRingWindow(StateFormat(), bytes,
                                          mtp_.config().max_position_embeddings, &state->ring_));
  return std::unique_ptr<DraftState>(std::move(state));
}

}  // namespace dsv4::runner
