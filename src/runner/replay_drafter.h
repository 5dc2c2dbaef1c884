// A drafter that replays recorded continuations at a chosen acceptance rate: given whole
// reference sequences (prompt + the target's output from a run without speculation), at
// position p of a sequence that follows a reference it proposes reference[p] with
// probability `alpha` (deterministic: a seeded hash of (seed, p) compared with alpha), else
// a token the target will not pick there (reference[p] + 1 mod vocab). It costs nothing to
// draft, so speculative decoding with it measures what verification alone costs and gains
// at a given acceptance rate (`dsv4 bench spec`, README "Speculative decoding"). Output is
// unchanged, as with every drafter. A sequence that follows no reference gets no drafts.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "runner/drafter.h"

namespace dsv4::runner {

class ReplayDrafter final : public Drafter {
 public:
  // alpha in [0, 1]; max_draft >= 1; vocab_size >= 2.
  ReplayDrafter(std::vector<std::vector<int32_t>> references, double alpha, uint64_t seed,
                int64_t max_draft, int64_t vocab_size);

  std::string_view name() const override { return "replay"; }
  int64_t max_draft_tokens() const override { return max_draft_; }
  bool needs_hidden() const override { return false; }
  std::unique_ptr<DraftState> NewState() const override;
  Status Propose(ThreadPool& pool, DraftState& state, std::span<const int32_t> tokens,
                 std::span<const BF16> hidden, int64_t k,
                 std::vector<int32_t>* drafts) const override;
  void Truncate(DraftState& state, int64_t n) const override;

  // Whether the draft at position p is the reference's token (the seeded coin of p).
  bool Right(int64_t p) const;

 private:
  std::vector<std::vector<int32_t>> references_;
  double alpha_;
  uint64_t seed_;
  int64_t max_draft_;
  int64_t vocab_size_;
};

}  // namespace dsv4::runner
