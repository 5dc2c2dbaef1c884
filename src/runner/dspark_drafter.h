// DSpark's draft blocks (spec §11.4, models/v4/dspark.h) as a speculative-decoding drafter.
//
// Each sequence's state is its ring (kv::V4SequenceCache over Dspark::RingConfig: one
// SWA-only layer per draft block holding that block's window keys of the committed positions)
// and the number of positions it has consumed. It reads the target's target-layer means
// (hidden_rows() == kTargetLayerMeans: the engine asks the target forward for them).
// Propose consumes the newly committed positions (their main_x window keys go into the ring,
// one batched call), then runs one draft block [anchor = tokens.back(), noise x (S-1)] at
// positions P .. P+S-1 (P = committed positions), which only reads the ring: drafting leaves
// no trace. The block always has S = dspark.block_size rows (its attention is not causal, so
// a shorter block would draft differently); k < S keeps the first k drafts.
//
// Confidence rule (options.min_confidence): drafts are kept up to (not including) the first
// whose confidence_i = sigmoid(proj([x_i; e_i])) is below the threshold. Default 0: every
// draft up to k is proposed (the engine's verification decides; the head only changes speed).
//
// Truncate(n) is exact while the ring still holds the rows of positions [n - W, n)
// (W = sliding_window): the `history` extra slots keep rows the window has moved past, so a
// state can go back up to `history` positions. Further back it restarts from 0 (it does not
// keep the target's rows to rebuild them). n = 0 releases the ring.
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
#include "models/v4/dspark.h"
#include "models/v4/model.h"
#include "runner/drafter.h"
#include "runner/ring_window_state.h"

namespace dsv4::runner {

struct DsparkDrafterOptions {
  // Ring slots beyond the attention window: Truncate is exact up to this many positions back.
  // -1: sliding_window.
  int64_t history = -1;
  // Drafts stop before the first whose confidence is below this (0: never).
  float min_confidence = 0.0f;
};

// One sequence's DSpark state.
class DsparkDraftState final : public DraftState {
 public:
  explicit DsparkDraftState(const checkpoint::ModelConfig& ring_config) : ring_(ring_config) {}
  // Positions [0, num_tokens()) consumed: their window keys are in the ring.
  int64_t num_tokens() const override { return ring_.num_tokens(); }
  const kv::V4SequenceCache& ring() const { return ring_; }
  // The last Propose's draft block (before truncation to k) and its confidences.
  const std::vector<int32_t>& block() const { return block_; }
  const std::vector<float>& confidence() const { return confidence_; }

 private:
  friend class DsparkDrafter;
  kv::V4SequenceCache ring_;
  int64_t intact_from_ = 0;  // the lowest position whose ring slots still hold its rows
  std::vector<int32_t> block_;
  std::vector<float> confidence_;
};

class DsparkDrafter final : public Drafter {
 public:
  // `target` and `w` (LoadedModel::v4_draft->dspark of the same checkpoint) must outlive the
  // drafter; its states must not outlive it (their rings point at its ring config).
  DsparkDrafter(const v4::Model& target, const v4::DsparkWeights& w,
                DsparkDrafterOptions options = {});

  std::string_view name() const override { return "dspark"; }
  int64_t max_draft_tokens() const override { return dspark_.block_size(); }
  bool needs_hidden() const override { return true; }
  models::HiddenRows hidden_rows() const override {
    return models::HiddenRows::kTargetLayerMeans;
  }
  std::unique_ptr<DraftState> NewState() const override;
  // Errors: InvalidArgument for empty `tokens`, a hidden size other than (tokens.size() - 1 -
  // state.num_tokens()) rows of T*D, or an anchor outside the vocabulary; FailedPrecondition
  // when tokens.size() - 1 < state.num_tokens() (Truncate first); ResourceExhausted /
  // OutOfRange from the module. The state is unchanged on error. k is capped at the block
  // size; no drafts when the block would pass max_position_embeddings; k <= 0 only consumes.
  Status Propose(ThreadPool& pool, DraftState& state, std::span<const int32_t> tokens,
                 std::span<const BF16> hidden, int64_t k,
                 std::vector<int32_t>* drafts) const override;
  void Truncate(DraftState& state, int64_t n) const override;
  void JoinExpertParallelCall(ThreadPool& pool) const override;
  // The state's bytes: every block's ring rows of positions [n - W, n) (all the next draft
  // reads) and n, in runner/ring_window_state.h's layout with magic "DSV4DSPS" and one layer
  // per draft block. RestoreState's state proposes exactly what the saved one would
  // (Truncate goes back only to n - W); errors name what is wrong, as for MTP.
  bool saves_state() const override { return true; }
  Status SaveState(const DraftState& state, std::vector<uint8_t>* out) const override;
  Result<std::unique_ptr<DraftState>> RestoreState(std::span<const uint8_t> bytes) const override;

  const v4::Dspark& module() const { return dspark_; }

 private:
  RingWindowFormat StateFormat() const;
  v4::Dspark dspark_;
  checkpoint::ModelConfig ring_config_;  // the states' rings point at it
  float min_confidence_ = 0.0f;
  mutable std::mutex ws_mu_;
  mutable v4::DsparkWorkspace ws_;  // kept across calls (under ws_mu_)
};

}  // namespace dsv4::runner
