// Test drafters whose proposals are known, to reach every path of speculative verification:
// an oracle that replays the target's own continuation (taken from a run without
// speculation: every draft accepted), one right only at a chosen pattern of positions
// (partial acceptance), and one never right (zero acceptance). They record how the engine
// calls them, so tests can check the Drafter contract too.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "dsv4/engine.h"
#include "runner/drafter.h"
#include "runner/loaded_model.h"

namespace dsv4::engine_test {

// What the engine did to the oracle's states (shared with the test; the engine thread
// writes it, the test reads it after the engine is gone or idle).
struct OracleLog {
  int64_t proposals = 0;          // Propose calls
  int64_t truncations = 0;        // Truncate calls
  int64_t restarts = 0;           // Truncate(state, 0)
  int64_t contract_breaches = 0;  // hidden rows given to a drafter that needs none, ...
};

class OracleDrafter final : public runner::Drafter {
 public:
  // `references`: whole sequences (prompt + the target's output in a run without
  // speculation). At index p of a sequence that follows a reference, the draft is
  // reference[p] when right(p), else a token that differs from it. A sequence that matches
  // no reference gets no drafts. With `hidden_width` > 0 it reads the target's hidden rows
  // and checks each is HiddenRow(position, token) of the position it is given for.
  OracleDrafter(std::vector<std::vector<int32_t>> references, std::function<bool(int64_t)> right,
                int64_t max_draft, int64_t vocab_size, std::shared_ptr<OracleLog> log,
                int64_t hidden_width = 0)
      : references_(std::move(references)),
        right_(std::move(right)),
        max_draft_(max_draft),
        vocab_size_(vocab_size),
        log_(std::move(log)),
        hidden_width_(hidden_width) {}

  std::string_view name() const override { return "oracle"; }
  int64_t max_draft_tokens() const override { return max_draft_; }
  bool needs_hidden() const override { return hidden_width_ > 0; }
  std::unique_ptr<runner::DraftState> NewState() const override {
    return std::make_unique<State>();
  }

  Status Propose(ThreadPool&, runner::DraftState& state, std::span<const int32_t> tokens,
                 std::span<const BF16> hidden, int64_t k,
                 std::vector<int32_t>* drafts) const override {
    State& s = static_cast<State&>(state);
    ++log_->proposals;
    const int64_t n = static_cast<int64_t>(tokens.size());
    if (n < 1 || s.n > n - 1 || k < 0 || !HiddenRowsMatch(s.n, tokens, hidden)) {
      ++log_->contract_breaches;
    }
    s.n = n - 1;
    drafts->clear();
    for (const std::vector<int32_t>& ref : references_) {
      if (ref.size() < tokens.size() || !std::equal(tokens.begin(), tokens.end(), ref.begin())) {
        continue;
      }
      for (int64_t p = n; p < n + k && p < static_cast<int64_t>(ref.size()); ++p) {
        const int32_t want = ref[static_cast<size_t>(p)];
        drafts->push_back(right_(p) ? want : static_cast<int32_t>((want + 1) % vocab_size_));
      }
      break;
    }
    return Status::Ok();
  }

  // What a test model writes as the hidden row of `token` at `position` (4 values): the
  // oracle can then tell whether it was given the rows of exactly the right positions.
  static void HiddenRow(int64_t position, int32_t token, BF16* row) {
    const uint32_t p = static_cast<uint32_t>(position), t = static_cast<uint32_t>(token);
    row[0].bits = static_cast<uint16_t>(p & 0xffff);
    row[1].bits = static_cast<uint16_t>(p >> 16);
    row[2].bits = static_cast<uint16_t>(t & 0xffff);
    row[3].bits = static_cast<uint16_t>(t >> 16);
  }

  void Truncate(runner::DraftState& state, int64_t n) const override {
    State& s = static_cast<State&>(state);
    ++log_->truncations;
    if (n == 0) ++log_->restarts;
    s.n = std::min(s.n, n);
  }

 private:
  // Rows for exactly positions [from, tokens.size() - 1), each of its position and token.
  bool HiddenRowsMatch(int64_t from, std::span<const int32_t> tokens,
                       std::span<const BF16> hidden) const {
    if (hidden_width_ == 0) return hidden.empty();
    const int64_t rows = static_cast<int64_t>(tokens.size()) - 1 - from;
    if (rows < 0 || static_cast<int64_t>(hidden.size()) != rows * hidden_width_) return false;
    for (int64_t r = 0; r < rows; ++r) {
      BF16 want[4];
      HiddenRow(from + r, tokens[static_cast<size_t>(from + r)], want);
      for (int i = 0; i < 4; ++i) {
        if (hidden[static_cast<size_t>(r * hidden_width_ + i)].bits != want[i].bits) return false;
      }
    }
    return true;
  }

  struct State final : runner::DraftState {
    int64_t n = 0;
    int64_t num_tokens() const override { return n; }
  };
  std::vector<std::vector<int32_t>> references_;
  std::function<bool(int64_t)> right_;
  int64_t max_draft_;
  int64_t vocab_size_;
  std::shared_ptr<OracleLog> log_;
  int64_t hidden_width_;
};

// Engine options that speculate with an oracle over `references` (K drafts per step).
inline EngineOptions WithOracle(EngineOptions o, std::vector<std::vector<int32_t>> references,
                                std::function<bool(int64_t)> right, int64_t k,
                                std::shared_ptr<OracleLog> log = std::make_shared<OracleLog>()) {
  o.speculative = SpeculativeMode::kAuto;
  o.draft_tokens = k;
  o.drafter = [references = std::move(references), right = std::move(right), k,
               log](const runner::LoadedModel& m) -> Result<std::unique_ptr<runner::Drafter>> {
    return std::unique_ptr<runner::Drafter>(std::make_unique<OracleDrafter>(
        references, right, k, m.lm->config().vocab_size, log));
  };
  return o;
}

inline bool Always(int64_t) { return true; }
inline bool Never(int64_t) { return false; }

// Prompt + output of each request: what the oracles replay.
inline std::vector<std::vector<int32_t>> References(const std::vector<GenerationRequest>& reqs,
                                                    const std::vector<std::vector<int32_t>>& outs) {
  std::vector<std::vector<int32_t>> refs;
  for (size_t i = 0; i < reqs.size(); ++i) {
    refs.push_back(reqs[i].prompt);
    refs.back().insert(refs.back().end(), outs[i].begin(), outs[i].end());
  }
  return refs;
}

}  // namespace dsv4::engine_test
