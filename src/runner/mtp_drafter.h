// The April MTP module (spec §11.3, models/v4/mtp.h) as a speculative-decoding drafter.
//
// Each sequence's state is the module's own window ring (kv::V4SequenceCache over one
// SWA-only layer) and the number of positions it has consumed. Propose consumes the target's
// newly committed positions t (its hidden row X_t and token t+1) in one batched module call,
// whose last row gives the first draft (argmax of the draft logits, ties to the lower id).
// Drafts 2..k reuse the module on its own output, as vLLM does for k > 1: the block's final
// streams of the previous row stand in for the target's X, the previous draft for the next
// token. Those chained rows write ring slots of positions the target has not committed; the
// ring keeps `history` slots beyond the window, so they overwrite only rows outside it, and
// the state is moved back to the committed count afterwards: drafting leaves no trace.
//
// Truncate(n) is exact while the ring still holds the rows of positions [n - W, n) (W =
// sliding_window). The `history` extra slots keep the rows the window has moved past, so a
// state can go back up to `history` positions, less the chained rows its last Propose wrote
// (a verify step's rejected drafts are never more than k back). Further back the state
// restarts from 0: it cannot rebuild those rows without the target's hidden rows, which it
// does not keep. n = 0 releases the ring.
//
// Not thread-safe: one engine thread calls it (runner/drafter.h).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string_view>
#include <vector>

#include "core/bf16.h"
#include "core/status.h"
#include "core/thread_pool.h"
#include "checkpoint/config.h"
#include "kv/v4_cache.h"
#include "models/v4/draft_weights.h"
#include "models/v4/model.h"
#include "models/v4/mtp.h"
#include "runner/drafter.h"
#include "runner/ring_window_state.h"

namespace dsv4::runner {

struct MtpDrafterOptions {
  // Most drafts one Propose writes (1: the module alone; more: chained reuse).
  int64_t max_draft_tokens = 4;
  // Ring slots beyond the attention window (0: the window sliding_window only). Truncate is
  // exact up to this many positions back, less the chained rows of the last Propose.
  // -1: sliding_window.
  int64_t history = -1;
};

// One sequence's MTP state.
class MtpDraftState final : public DraftState {
 public:
  explicit MtpDraftState(const checkpoint::ModelConfig& ring_config) : ring_(ring_config) {}
  // Positions [0, num_tokens()) consumed: their rows are in the ring.
  int64_t num_tokens() const override { return ring_.num_tokens(); }
  const kv::V4SequenceCache& ring() const { return ring_; }

 private:
  friend class MtpDrafter;
  kv::V4SequenceCache ring_;
  int64_t intact_from_ = 0;     // the lowest position whose ring slot still holds its row
  std::vector<float> logits_;   // FP32 [vocab]: the last row's draft logits
  std::vector<BF16> x_, x_next_;  // BF16 [hc*D]: a chained row's X and the block's output
};

class MtpDrafter final : public Drafter {
 public:
  // `target` and `w` (LoadedModel::v4_draft->mtp of the same checkpoint) must outlive the
  // drafter; its states must not outlive it (their rings point at its ring config).
  MtpDrafter(const v4::Model& target, const v4::MtpWeights& w, MtpDrafterOptions options = {});

  std::string_view name() const override { return "mtp"; }
  int64_t max_draft_tokens() const override { return max_draft_tokens_; }
  bool needs_hidden() const override { return true; }
  std::unique_ptr<DraftState> NewState() const override;
  // Errors: InvalidArgument for empty `tokens`, a hidden size other than (tokens.size() - 1 -
  // state.num_tokens()) rows of hc*D, or a token outside the vocabulary; FailedPrecondition
  // when tokens.size() - 1 < state.num_tokens() (Truncate first); ResourceExhausted /
  // OutOfRange from the module. The state is unchanged on error. k is capped at
  // max_draft_tokens() and by max_position_embeddings; no new position gives no drafts, k <= 0
  // only consumes.
  Status Propose(ThreadPool& pool, DraftState& state, std::span<const int32_t> tokens,
                 std::span<const BF16> hidden, int64_t k,
                 std::vector<int32_t>* drafts) const override;
  void Truncate(DraftState& state, int64_t n) const override;
  void JoinExpertParallelCall(ThreadPool& pool) const override;
  // The state's bytes: the ring rows of positions [n - W, n) (all it reads next) and n, in
  // runner/ring_window_state.h's layout with magic "DSV4MTPS" and one layer. RestoreState's
  // state proposes exactly what the saved one would (Truncate goes back only to n - W);
  // DataLoss / FailedPrecondition name a wrong size, magic, version, window, entry size, row
  // range or checksum.
  bool saves_state() const override { return true; }
  Status SaveState(const DraftState& state, std::vector<uint8_t>* out) const override;
  Result<std::unique_ptr<DraftState>> RestoreState(std::span<const uint8_t> bytes) const override;

  const v4::Mtp& module() const { return mtp_; }

 private:
  RingWindowFormat StateFormat() const;
  // Runs one module call on `item` (with the kept scratch when free) and records the ring
  // slots it overwrote in `st`.
  Status Run(ThreadPool& pool, MtpDraftState& st, const v4::Mtp::BatchItem& item) const;

  v4::Mtp mtp_;
  checkpoint::ModelConfig ring_config_;  // the states' rings point at it
  int64_t max_draft_tokens_ = 1;
  mutable std::mutex ws_mu_;
  mutable v4::MtpWorkspace ws_;  // kept across calls (under ws_mu_)
};

}  // namespace dsv4::runner
