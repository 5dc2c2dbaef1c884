// What the drafter tests (mtp_drafter_test, dspark_drafter_test) share: the tiny model loaded
// as run/serve load it, random tokens, the target's side of a sequence, and a driver that
// runs a drafter the way the engine does.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "checkpoint/checkpoint.h"
#include "checkpoint/presets.h"
#include "checkpoint/tensor_store.h"
#include "core/rng.h"
#include "runner/drafter.h"
#include "runner/loaded_model.h"
#include "testing/weight_generator.h"

namespace dsv4::runner::testing {

// The tiny model (window 32) in the layout of `f`, in memory, loaded by the runner.
inline std::unique_ptr<LoadedModel> LoadTiny(checkpoint::DraftFamily f) {
  checkpoint::Checkpoint ck;
  ck.name = "tiny";
  ck.config = checkpoint::WithDrafter(checkpoint::TinyV4Config(), f);
  ck.weights = checkpoint::TensorStore::Create(
                   "w", fixtures::GenerateWeights(ck.config, fixtures::kDefaultSeed).value())
                   .value();
  EXPECT_TRUE(checkpoint::VerifyTensors(ck.config, *ck.weights, &ck.drafter, &ck.unexpected).ok());
  return LoadCheckpoint(std::move(ck), "tiny").value();
}

inline std::vector<int32_t> RandomTokens(int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> t;
  for (int64_t i = 0; i < n; ++i) t.push_back(static_cast<int32_t>(rng.Below(512)));
  return t;
}

// The target's side of a sequence: feeds tokens and hands back their hidden rows of `kind`.
struct Target {
  explicit Target(const CausalLm& lm, HiddenRows kind = HiddenRows::kFinalStreams)
      : lm(lm), kind(kind), seq(lm.NewSequence()) {}
  std::vector<BF16> Feed(ThreadPool& pool, std::span<const int32_t> tokens) {
    std::vector<BF16> hidden;
    CausalLm::BatchItem item{seq.get(), tokens, LogitsMode::kNone, nullptr, &hidden};
    item.hidden_rows = kind;
    EXPECT_TRUE(lm.ForwardBatch(pool, {&item, 1}).ok());
    return hidden;
  }
  const CausalLm& lm;
  HiddenRows kind;
  std::unique_ptr<SequenceState> seq;
};

// Runs a drafter the way the engine does over `tokens`: a prompt of `prompt` tokens, then
// steps that commit 1, 2, 3, 1, 2, 3, ... positions; each step the drafter consumes the
// committed positions and drafts k tokens to follow the next one. Returns every step's
// drafts; *committed_at gets the committed count of each step.
inline std::vector<std::vector<int32_t>> Drive(const Drafter& d, DraftState& state,
                                               const CausalLm& lm,
                                               const std::vector<int32_t>& tokens,
                                               int64_t prompt, int64_t k,
                                               std::vector<int64_t>* committed_at) {
  ThreadPool pool(2);
  Target target(lm, d.hidden_rows());
  std::vector<std::vector<int32_t>> out;
  const int64_t end = static_cast<int64_t>(tokens.size()) - 1;
  for (int64_t p = 0, step = 0; p < end; ++step) {
    const int64_t len = p == 0 ? prompt : std::min<int64_t>(1 + step % 3, end - p);
    const std::vector<BF16> rows = target.Feed(pool, {tokens.data() + p, static_cast<size_t>(len)});
    p += len;
    std::vector<int32_t> drafts;
    EXPECT_TRUE(d.Propose(pool, state, {tokens.data(), static_cast<size_t>(p + 1)}, rows, k,
                          &drafts).ok());
    EXPECT_EQ(state.num_tokens(), p);
    out.push_back(drafts);
    if (committed_at != nullptr) committed_at->push_back(p);
  }
  return out;
}

// RestoreState refuses `bytes` with `code`, its message naming `what`.
inline void ExpectRestoreRefused(const Drafter& d, std::span<const uint8_t> bytes,
                                 StatusCode code, const std::string& what) {
  Result<std::unique_ptr<DraftState>> r = d.RestoreState(bytes);
  EXPECT_EQ(r.status().code(), code) << what;
  EXPECT_NE(r.status().message().find(what), std::string::npos) << r.status().message();
}

// A saved empty state, cut short and with a flipped checksum bit, is refused.
inline std::vector<uint8_t> ExpectTruncatedAndCorruptStatesRefused(const Drafter& d) {
  std::vector<uint8_t> good;
  EXPECT_TRUE(d.SaveState(*d.NewState(), &good).ok());
  ExpectRestoreRefused(d, std::span<const uint8_t>(good).first(10), StatusCode::kDataLoss,
                       "shorter than");
  std::vector<uint8_t> bad = good;
  bad.back() ^= 1;
  ExpectRestoreRefused(d, bad, StatusCode::kDataLoss, "checksum");
  return good;
}

}  // namespace dsv4::runner::testing
