#include "runner/replay_drafter.h"

#include <algorithm>
#include <utility>

#include "core/check.h"
#include "core/rng.h"

namespace dsv4::runner {
namespace {

// Positions consumed; nothing else (the drafts depend only on the tokens and the position).
struct ReplayState final : DraftState {
  int64_t n = 0;
  int64_t num_tokens() const override { return n; }
};

}  // namespace

ReplayDrafter::ReplayDrafter(std::vector<std::vector<int32_t>> references, double alpha,
                             uint64_t seed, int64_t max_draft, int64_t vocab_size)
    : references_(std::move(references)),
      alpha_(alpha),
      seed_(seed),
      max_draft_(max_draft),
      vocab_size_(vocab_size) {
  DSV4_CHECK(alpha >= 0.0 && alpha <= 1.0);
  DSV4_CHECK(max_draft >= 1 && vocab_size >= 2);
}

std::unique_ptr<DraftState> ReplayDrafter::NewState() const {
  return std::make_unique<ReplayState>();
}

bool ReplayDrafter::Right(int64_t p) const {
  Rng coin(seed_ ^ (static_cast<uint64_t>(p) * 0x9e3779b97f4a7c15ull));
  return coin.Uniform() < alpha_;  // Uniform() is in [0, 1): alpha 1 always, 0 never
}

Status ReplayDrafter::Propose(ThreadPool&, DraftState& state, std::span<const int32_t> tokens,
                              std::span<const BF16>, int64_t k,
                              std::vector<int32_t>* drafts) const {
  const int64_t n = static_cast<int64_t>(tokens.size());
  static_cast<ReplayState&>(state).n = std::max<int64_t>(n - 1, 0);
  drafts->clear();
  k = std::min(k, max_draft_);
  for (const std::vector<int32_t>& ref : references_) {
    if (ref.size() < tokens.size() || !std::equal(tokens.begin(), tokens.end(), ref.begin())) {
      continue;
    }
    for (int64_t p = n; p < n + k && p < static_cast<int64_t>(ref.size()); ++p) {
      const int32_t want = ref[static_cast<size_t>(p)];
      drafts->push_back(Right(p) ? want : static_cast<int32_t>((want + 1) % vocab_size_));
    }
    break;
  }
  return Status::Ok();
}

void ReplayDrafter::Truncate(DraftState& state, int64_t n) const {
  ReplayState& s = static_cast<ReplayState&>(state);
  s.n = std::min(s.n, n);
}

}  // namespace dsv4::runner
