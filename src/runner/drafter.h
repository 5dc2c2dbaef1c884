// Speculative decoding's drafter: proposes tokens that the target model then verifies in one
// batched step (src/engine: the engine's Step, README "Speculative decoding"). A drafter's
// proposals never change output (verification decides what is emitted); they only change
// speed. Implementations: the April MTP module and DSpark (spec §11.3, §11.4), and the test
// oracles (tests/engine).
//
// One Drafter serves every sequence of an engine; each sequence has its own DraftState. The
// engine thread alone calls it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <span>
#include <string_view>
#include <vector>

#include "core/bf16.h"
#include "core/status.h"
#include "core/thread_pool.h"
#include "models/common/hidden_rows.h"

namespace dsv4::runner {

// Per-sequence drafter state (e.g. MTP's window ring); positions it has consumed.
class DraftState {
 public:
  virtual ~DraftState() = default;
  virtual int64_t num_tokens() const = 0;
};

class Drafter {
 public:
  virtual ~Drafter() = default;
  virtual std::string_view name() const = 0;   // "mtp", "dspark", test oracles
  virtual int64_t max_draft_tokens() const = 0;
  virtual bool needs_hidden() const = 0;       // wants BatchItem::hidden of the target
  // Which hidden rows it reads when needs_hidden() (the engine sets BatchItem::hidden_rows).
  virtual models::HiddenRows hidden_rows() const { return models::HiddenRows::kFinalStreams; }
  virtual std::unique_ptr<DraftState> NewState() const = 0;
  // The target has committed positions [state.num_tokens(), tokens.size() - 1): `hidden`
  // holds its rows for exactly those positions (BF16 [n, hidden_width], empty when
  // !needs_hidden()); tokens.back() is the token just sampled (not yet fed to the target).
  // Consumes them (advancing state to tokens.size() - 1) and writes up to k draft tokens
  // to follow tokens.back() into *drafts (fewer or none is allowed).
  virtual Status Propose(ThreadPool& pool, DraftState& state, std::span<const int32_t> tokens,
                         std::span<const BF16> hidden, int64_t k,
                         std::vector<int32_t>* drafts) const = 0;
  // The target rolled back / restarted: forget everything past position n (n may be 0;
  // a drafter whose state cannot go back restarts from 0 and may draft worse, never wrong).
  virtual void Truncate(DraftState& state, int64_t n) const = 0;

  // Expert parallelism (the target loaded with LoadOptions::expert_parallel): a drafter whose
  // forward has MoE layers announces each forward to the other ranks
  // (dist::ExpertParallel::BeginDraftCall), and a rank that did not run it joins its MoE
  // layers with zero rows here. Default: nothing (a drafter without such layers never
  // announces one).
  virtual void JoinExpertParallelCall(ThreadPool& /*pool*/) const {}

  // Serialisation of a state, so that a request continuing from a cached prefix (the
  // engine's prefix cache, finished-turn snapshots, the disk tier) drafts from its first
  // step exactly as if it had consumed the prefix itself. SaveState appends the bytes of
  // `state` (all it has consumed: num_tokens() positions) to *out in a layout of the
  // drafter's own, versioned and self-checking; RestoreState makes a state from them that
  // proposes exactly what `state` would. Defaults: not supported (Unimplemented); the engine
  // then saves nothing, and a request that hits a cached prefix does not draft when the
  // drafter needs_hidden() (it cannot consume the prefix's rows); others consume the prefix's
  // tokens as before. RestoreState errors (DataLoss, FailedPrecondition) name what does not
  // match: another drafter, layout version or geometry. The bytes may come from a file:
  // they are checked, never trusted.
  virtual bool saves_state() const { return false; }
  virtual Status SaveState(const DraftState& /*state*/, std::vector<uint8_t>* /*out*/) const {
    return Status::Unimplemented("the " + std::string(name()) + " drafter cannot save its state");
  }
  virtual Result<std::unique_ptr<DraftState>> RestoreState(
      std::span<const uint8_t> /*bytes*/) const {
    return Status::Unimplemented("the " + std::string(name()) +
                                 " drafter cannot restore a saved state");
  }
};

}  // namespace dsv4::runner
