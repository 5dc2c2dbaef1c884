// Speculative decoding end to end on the tiny V4 and V3.2 models, with oracle drafters whose
// proposals are known (oracle_drafter.h): full, partial and zero acceptance give outputs
// bit-identical to runs without speculation (greedy and sampled requests), acceptance
// counters equal what the oracle's pattern implies, and preemption, cancellation, prefix
// hits and stops inside an accepted run behave as without speculation.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "checkpoint/presets.h"
#include "core/rng.h"
#include "dsv4/engine.h"
#include "engine_fixtures.h"
#include "kv/page_layout.h"
#include "oracle_drafter.h"
#include "runner/accounting_lm.h"
#include "runner/causal_lm.h"
#include "runner/loaded_model.h"
#include "testing/weight_generator.h"

namespace dsv4 {
namespace {

using engine_test::Always;
using engine_test::Collect;
using engine_test::KvBytesAfterClearingCache;
using engine_test::Never;
using engine_test::OracleLog;
using engine_test::References;
using engine_test::WithOracle;
using ::testing::HasSubstr;

using Model = engine_test::Served;
const Model& V4() { return engine_test::V4Tiny(); }
const Model& V32() { return engine_test::V32Tiny(); }

EngineOptions Plain() {
  EngineOptions o;
  o.speculative = SpeculativeMode::kOff;
  o.prefix_caching = false;
  return o;
}

// Submits every request at once and collects their outputs; *stats after the last one, with
// kv.used_bytes once the prefix cache is cleared.
std::vector<std::vector<int32_t>> RunAll(const Model& m, const EngineOptions& o,
                                         const std::vector<GenerationRequest>& reqs,
                                         EngineStats* stats) {
  auto e = Engine::Create(m.factory, o).value();
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (const GenerationRequest& r : reqs) streams.push_back(e->Submit(r).value());
  std::vector<std::vector<int32_t>> out;
  for (auto& s : streams) out.push_back(Collect(*s));
  *stats = e->Stats();
  stats->kv.used_bytes = KvBytesAfterClearingCache(*e);
  return out;
}

// Greedy and sampled requests of different lengths.
std::vector<GenerationRequest> Mixed(int n, uint64_t seed) {
  Rng rng(seed);
  std::vector<GenerationRequest> out;
  for (int i = 0; i < n; ++i) {
    GenerationRequest r;
    const int64_t len = 10 + static_cast<int64_t>(rng.Below(60));
    for (int64_t t = 0; t < len; ++t) r.prompt.push_back(static_cast<int32_t>(rng.Below(512)));
    r.stop = {.max_new_tokens = 15 + static_cast<int64_t>(rng.Below(25)), .ignore_eos = true};
    if (i % 2) r.sampling = {.temperature = 0.8f, .top_k = 0, .top_p = 0.95f, .seed = 50u + i};
    out.push_back(r);
  }
  return out;
}

// The acceptance counters a pattern implies: the engine's step structure replayed (the first
// token from the prefill; then each step drafts min(K, what the request may still emit - 1)
// tokens for the next positions and accepts the leading ones the oracle gets right).
struct Expected {
  int64_t verifications = 0, drafted = 0, accepted = 0;
  std::vector<int64_t> drafted_at, accepted_at;
};
Expected Simulate(const std::vector<GenerationRequest>& reqs,
                  const std::function<bool(int64_t)>& right, int64_t k_max) {
  Expected e;
  e.drafted_at.assign(static_cast<size_t>(k_max), 0);
  e.accepted_at.assign(static_cast<size_t>(k_max), 0);
  for (const GenerationRequest& r : reqs) {
    const int64_t end = static_cast<int64_t>(r.prompt.size()) + r.stop.max_new_tokens;
    int64_t t = static_cast<int64_t>(r.prompt.size()) + 1;
    while (t < end) {
      const int64_t k = std::min(k_max, end - t - 1);
      int64_t j = 0;
      while (j < k && right(t + j)) ++j;
      if (k > 0) {
        ++e.verifications;
        e.drafted += k;
        e.accepted += j;
        for (int64_t i = 0; i < k; ++i) ++e.drafted_at[static_cast<size_t>(i)];
        for (int64_t i = 0; i < j; ++i) ++e.accepted_at[static_cast<size_t>(i)];
      }
      t += j + 1;
    }
  }
  return e;
}

void ExpectCounters(const EngineStats& s, const Expected& e) {
  EXPECT_EQ(s.spec_verifications, e.verifications);
  EXPECT_EQ(s.spec_draft_tokens, e.drafted);
  EXPECT_EQ(s.spec_accepted_tokens, e.accepted);
  EXPECT_EQ(s.spec_drafted_at, e.drafted_at);
  EXPECT_EQ(s.spec_accepted_at, e.accepted_at);
}

// Full, partial and zero acceptance: the same tokens as without speculation, greedy and
// sampled, and exactly the acceptance the oracle's pattern implies.
void ExpectAcceptancePatterns(const Model& m) {
  SCOPED_TRACE(m.name);
  const std::vector<GenerationRequest> reqs = Mixed(4, 9);
  EngineStats plain_stats;
  const auto want = RunAll(m, Plain(), reqs, &plain_stats);
  const auto refs = References(reqs, want);
  EXPECT_EQ(plain_stats.spec_verifications, 0);
  EXPECT_TRUE(plain_stats.spec_drafted_at.empty());

  struct Case {
    const char* name;
    std::function<bool(int64_t)> right;
    int64_t k;
  };
  const std::vector<Case> cases = {
      {"full", Always, 3},
      {"partial", [](int64_t p) { return p % 3 != 0; }, 4},
      {"zero", Never, 2},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto log = std::make_shared<OracleLog>();
    EngineStats st;
    const auto got = RunAll(m, WithOracle(Plain(), refs, c.right, c.k, log), reqs, &st);
    EXPECT_EQ(got, want);
    const Expected e = Simulate(reqs, c.right, c.k);
    ExpectCounters(st, e);
    EXPECT_GT(e.verifications, 0);
    EXPECT_EQ(st.generated_tokens, plain_stats.generated_tokens);
    EXPECT_EQ(st.kv.used_bytes, 0);
    EXPECT_EQ(log->contract_breaches, 0);
    if (std::string(c.name) == "full") {
      EXPECT_EQ(st.spec_accepted_tokens, st.spec_draft_tokens);
      EXPECT_DOUBLE_EQ(st.spec_acceptance_rate(), 1.0);
      EXPECT_GT(st.spec_mean_accepted_length(), 3.0);
      EXPECT_LT(st.steps, plain_stats.steps);  // fewer steps for the same tokens
      EXPECT_EQ(log->truncations, 0);
    } else if (std::string(c.name) == "zero") {
      EXPECT_EQ(st.spec_accepted_tokens, 0);
      EXPECT_DOUBLE_EQ(st.spec_mean_accepted_length(), 1.0);
      EXPECT_EQ(log->truncations, st.spec_verifications);  // each rejection is told
    } else {
      EXPECT_GT(st.spec_accepted_tokens, 0);
      EXPECT_LT(st.spec_accepted_tokens, st.spec_draft_tokens);
      EXPECT_GT(log->truncations, 0);
    }
  }
}

TEST(Speculative, FullPartialAndZeroAcceptanceGiveIdenticalOutput) {
  ExpectAcceptancePatterns(V4());
}
TEST(SpeculativeV32, FullPartialAndZeroAcceptanceGiveIdenticalOutput) {
  ExpectAcceptancePatterns(V32());
}

// Two requests whose growth cannot both fit: preemption (by recompute) while they speculate,
// and drafts that find no free page fall back to plain steps; outputs stay identical.
void ExpectPreemptionWhileSpeculating(const Model& m) {
  SCOPED_TRACE(m.name);
  const kv::PageLayout layout = m.layout();
  std::vector<GenerationRequest> reqs(2);
  for (int t = 0; t < 250; ++t) {
    reqs[0].prompt.push_back((t * 7) % 512);
    reqs[1].prompt.push_back((t * 11) % 512);
  }
  reqs[0].stop = reqs[1].stop = {.max_new_tokens = 120, .ignore_eos = true};
  reqs[1].sampling = {.temperature = 0.7f, .top_k = 40, .top_p = 1.0f, .seed = 4};
  EngineStats plain_stats;
  const auto want = RunAll(m, Plain(), reqs, &plain_stats);
  EngineOptions o = Plain();
  o.kv_budget_bytes = 2 * layout.BytesAt(251) + 1;
  auto log = std::make_shared<OracleLog>();
  EngineStats st;
  const auto got = RunAll(
      m, WithOracle(o, References(reqs, want), [](int64_t p) { return p % 5 != 2; }, 3, log),
      reqs, &st);
  EXPECT_EQ(got, want);
  EXPECT_GT(st.preemptions, 0);
  EXPECT_GT(st.spec_verifications, 0);
  EXPECT_GT(log->restarts, 0);  // a preempted sequence's drafter starts over
  EXPECT_EQ(log->contract_breaches, 0);
  EXPECT_EQ(st.kv.used_bytes, 0);
}

TEST(Speculative, PreemptionWhileSpeculatingGivesIdenticalOutput) {
  ExpectPreemptionWhileSpeculating(V4());
}
TEST(SpeculativeV32, PreemptionWhileSpeculatingGivesIdenticalOutput) {
  ExpectPreemptionWhileSpeculating(V32());
}

// A request cancelled while it speculates frees every page; the other one is unaffected.
TEST(Speculative, CancellationWhileSpeculatingFreesPages) {
  GenerationRequest victim, other;
  victim.prompt.assign(40, 3);
  victim.stop = {.max_new_tokens = 400, .ignore_eos = true};
  for (int t = 0; t < 30; ++t) other.prompt.push_back((t * 13 + 1) % 512);
  other.stop = {.max_new_tokens = 60, .ignore_eos = true};
  EngineStats plain_stats;
  const auto want = RunAll(V4(), Plain(), {victim, other}, &plain_stats);
  auto e = Engine::Create(V4().factory, WithOracle(Plain(), References({victim, other}, want),
                                                   Always, 4))
               .value();
  auto sv = e->Submit(victim).value();
  auto so = e->Submit(other).value();
  TokenEvent ev;
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(sv->Next(&ev));
  EXPECT_GT(e->Stats().spec_accepted_tokens, 0);  // it is speculating
  e->Cancel(sv->id());
  FinishReason reason = FinishReason::kNone;
  while (sv->Next(&ev)) reason = ev.reason;
  EXPECT_EQ(reason, FinishReason::kCancelled);
  EXPECT_EQ(Collect(*so), want[1]);
  EXPECT_EQ(KvBytesAfterClearingCache(*e), 0);
}

// Stop ids (the EOS path) inside an accepted run: the request ends with the stop token, no
// event after it, exactly as without speculation; max_new_tokens is never passed.
TEST(Speculative, StopsInsideAnAcceptedRunEndTheRequestThere) {
  GenerationRequest r;
  for (int t = 0; t < 20; ++t) r.prompt.push_back((t * 31 + 3) % 512);
  r.stop = {.max_new_tokens = 13, .ignore_eos = true};
  EngineStats st;
  const auto free_run = RunAll(V4(), Plain(), {r}, &st)[0];
  ASSERT_EQ(free_run.size(), 13u);
  // Full acceptance with K = 4: steps emit tokens 1-5, 6-10, 11-12 (the last capped by
  // max_new_tokens). A stop id at token 3 falls inside the first accepted run.
  size_t at = 3;
  while (std::find(free_run.begin(), free_run.begin() + at, free_run[at]) != free_run.begin() + at) {
    ++at;
  }
  ASSERT_LT(at, 5u) << "the stop token should end the first run";
  const EngineOptions o = WithOracle(Plain(), References({r}, {free_run}), Always, 4);
  GenerationRequest stopped = r;
  stopped.stop = {.max_new_tokens = 13, .ignore_eos = false, .stop_token_ids = {free_run[at]}};
  auto e = Engine::Create(V4().factory, o).value();
  auto s = e->Submit(stopped).value();
  std::vector<int32_t> got;
  std::vector<int64_t> indices;
  TokenEvent ev;
  FinishReason reason = FinishReason::kNone;
  int64_t final_index = -1;
  while (s->Next(&ev)) {
    if (ev.finished) {
      reason = ev.reason;
      final_index = ev.index;
    } else {
      got.push_back(ev.token);
      indices.push_back(ev.index);
    }
  }
  EXPECT_EQ(got, std::vector<int32_t>(free_run.begin(), free_run.begin() + at + 1));
  EXPECT_EQ(reason, FinishReason::kStop);
  EXPECT_EQ(final_index, static_cast<int64_t>(at) + 1);
  for (size_t i = 0; i < indices.size(); ++i) EXPECT_EQ(indices[i], static_cast<int64_t>(i));
  const EngineStats es = e->Stats();
  EXPECT_EQ(es.generated_tokens, static_cast<int64_t>(at) + 1);
  EXPECT_EQ(es.spec_accepted_tokens, 4);  // the run was accepted, then cut at the stop
  EXPECT_EQ(KvBytesAfterClearingCache(*e), 0);
  // And by length: exactly max_new_tokens, never more.
  EXPECT_EQ(Collect(*e->Submit(r).value()), free_run);
}

// Prefix caching: hits on prompts as without speculation, and a finished turn is cached at
// the same multiple of 128 (a speculative step never passes one), so the next turn of the
// conversation restores as much.
void ExpectPrefixCachingUnchanged(const Model& m) {
  SCOPED_TRACE(m.name);
  std::vector<int32_t> shared;
  for (int t = 0; t < 300; ++t) shared.push_back((t * 37 + 5) % 512);
  std::vector<GenerationRequest> turn1;
  for (int i = 0; i < 3; ++i) {
    GenerationRequest r;
    r.prompt.assign(shared.begin(), shared.begin() + 200 + 40 * i);
    for (int t = 0; t < 10; ++t) r.prompt.push_back((t * 13 + i) % 512);
    r.stop = {.max_new_tokens = 70, .ignore_eos = true};  // passes 256 or 384 while decoding
    if (i == 1) r.sampling = {.temperature = 0.9f, .top_k = 0, .top_p = 1.0f, .seed = 7};
    turn1.push_back(r);
  }
  EngineOptions caching;
  caching.speculative = SpeculativeMode::kOff;
  caching.prefix_snapshot_interval = 128;
  // Outputs of turn 1, then turn 2 = turn 1 + its output + a new message.
  auto run = [&](const EngineOptions& o, const std::vector<std::vector<int32_t>>* turn1_out,
                 std::vector<std::vector<int32_t>>* outs, EngineStats* st) {
    auto e = Engine::Create(m.factory, o).value();
    for (const auto& r : turn1) outs->push_back(Collect(*e->Submit(r).value()));
    const auto& base = turn1_out ? *turn1_out : *outs;
    for (size_t i = 0; i < turn1.size(); ++i) {
      GenerationRequest r = turn1[i];
      r.prompt.insert(r.prompt.end(), base[i].begin(), base[i].end());
      for (int t = 0; t < 5; ++t) r.prompt.push_back((t * 3 + 11) % 512);
      r.stop.max_new_tokens = 8;
      outs->push_back(Collect(*e->Submit(r).value()));
    }
    *st = e->Stats();
    EXPECT_EQ(KvBytesAfterClearingCache(*e), 0);
  };
  std::vector<std::vector<int32_t>> want, got;
  EngineStats plain_stats, st;
  run(caching, nullptr, &want, &plain_stats);
  std::vector<std::vector<int32_t>> turn1_want(want.begin(), want.begin() + 3);
  std::vector<GenerationRequest> all = turn1;
  for (size_t i = 0; i < 3; ++i) {
    GenerationRequest r = turn1[i];
    r.prompt.insert(r.prompt.end(), want[i].begin(), want[i].end());
    for (int t = 0; t < 5; ++t) r.prompt.push_back((t * 3 + 11) % 512);
    all.push_back(r);
  }
  run(WithOracle(caching, References(all, want), [](int64_t p) { return p % 7 != 0; }, 4),
      &turn1_want, &got, &st);
  EXPECT_EQ(got, want);
  EXPECT_GT(st.spec_accepted_tokens, 0);
  EXPECT_GT(plain_stats.prefix_hits, 3);
  EXPECT_GT(plain_stats.prefix_turn_snapshots, 0);
  EXPECT_EQ(st.prefix_hits, plain_stats.prefix_hits);
  EXPECT_EQ(st.prefix_hit_tokens, plain_stats.prefix_hit_tokens);
  EXPECT_EQ(st.prefix_turn_snapshots, plain_stats.prefix_turn_snapshots);
}

TEST(Speculative, PrefixHitsAndTurnSnapshotsAsWithoutSpeculation) {
  ExpectPrefixCachingUnchanged(V4());
}
TEST(SpeculativeV32, PrefixHitsAndTurnSnapshotsAsWithoutSpeculation) {
  ExpectPrefixCachingUnchanged(V32());
}

// The tiny V4 model as a target that gives hidden rows (BatchItem::hidden): for every fed
// token OracleDrafter::HiddenRow(position, token), so an oracle can check it was given the
// rows of exactly the positions the target committed.
class HiddenRowsLm final : public runner::CausalLm {
 public:
  explicit HiddenRowsLm(std::unique_ptr<runner::CausalLm> lm) : lm_(std::move(lm)) {}
  const checkpoint::ModelConfig& config() const override { return lm_->config(); }
  kv::PageLayout page_layout() const override { return lm_->page_layout(); }
  std::unique_ptr<kv::SequenceState> NewSequence(kv::KvManager* kv) const override {
    return lm_->NewSequence(kv);
  }
  bool snapshots_prefixes() const override { return lm_->snapshots_prefixes(); }
  int64_t hidden_width(runner::HiddenRows) const override { return 4; }
  Status Forward(ThreadPool& pool, kv::SequenceState& state, std::span<const int32_t> tokens,
                 runner::LogitsMode mode, std::vector<float>* logits) const override {
    return lm_->Forward(pool, state, tokens, mode, logits);
  }
  Status ForwardBatch(ThreadPool& pool, std::span<const BatchItem> batch) const override {
    std::vector<int64_t> pos0;
    for (const BatchItem& b : batch) pos0.push_back(b.state->num_tokens());
    DSV4_RETURN_IF_ERROR(lm_->ForwardBatch(pool, batch));
    for (size_t i = 0; i < batch.size(); ++i) {
      if (batch[i].hidden == nullptr) continue;
      batch[i].hidden->resize(batch[i].tokens.size() * 4);
      for (size_t t = 0; t < batch[i].tokens.size(); ++t) {
        engine_test::OracleDrafter::HiddenRow(pos0[i] + static_cast<int64_t>(t),
                                              batch[i].tokens[t],
                                              batch[i].hidden->data() + t * 4);
      }
    }
    return Status::Ok();
  }

 private:
  std::unique_ptr<runner::CausalLm> lm_;
};

// Drafters that read the target's hidden rows get those of exactly the positions the target
// committed (prefill chunk by chunk, accepted drafts, never rejected ones); a sequence that
// continued from a cached prefix has no rows for it and stops speculating instead.
TEST(Speculative, HiddenRowsOfEveryCommittedPositionReachTheDrafter) {
  const Model m{"v4 with hidden rows",
                []() -> Result<std::unique_ptr<runner::LoadedModel>> {
                  DSV4_ASSIGN_OR_RETURN(std::unique_ptr<runner::LoadedModel> lm,
                                        engine_test::Tiny()());
                  lm->lm = std::make_unique<HiddenRowsLm>(std::move(lm->lm));
                  return lm;
                },
                checkpoint::TinyV4Config()};
  const std::vector<GenerationRequest> reqs = Mixed(4, 33);
  EngineStats plain_stats;
  const auto want = RunAll(m, Plain(), reqs, &plain_stats);
  auto log = std::make_shared<OracleLog>();
  const auto right = [](int64_t p) { return p % 3 != 0; };
  auto with_hidden = [&](EngineOptions o, std::vector<std::vector<int32_t>> refs) {
    o.speculative = SpeculativeMode::kAuto;
    o.draft_tokens = 3;
    o.drafter = [refs, right, log](const runner::LoadedModel& lm)
        -> Result<std::unique_ptr<runner::Drafter>> {
      return std::unique_ptr<runner::Drafter>(std::make_unique<engine_test::OracleDrafter>(
          refs, right, 3, lm.lm->config().vocab_size, log, /*hidden_width=*/4));
    };
    return o;
  };
  EngineOptions chunked = Plain();
  chunked.max_num_batched_tokens = 24;  // prefill in chunks, drafts always within budget
  EngineStats st;
  EXPECT_EQ(RunAll(m, with_hidden(chunked, References(reqs, want)), reqs, &st), want);
  ExpectCounters(st, Simulate(reqs, right, 3));
  EXPECT_EQ(log->contract_breaches, 0);
  EXPECT_GT(log->proposals, st.spec_verifications);  // prefill chunks are consumed too

  // A prompt continued from a cached prefix: same output, no speculation for it.
  std::vector<GenerationRequest> two(2);
  for (int t = 0; t < 200; ++t) two[0].prompt.push_back((t * 29 + 7) % 512);
  two[1].prompt.assign(two[0].prompt.begin(), two[0].prompt.begin() + 150);
  two[1].prompt.push_back(9);
  two[0].stop = two[1].stop = {.max_new_tokens = 12, .ignore_eos = true};
  std::vector<std::vector<int32_t>> two_want;
  {
    auto e = Engine::Create(m.factory, Plain()).value();
    for (const auto& r : two) two_want.push_back(Collect(*e->Submit(r).value()));
  }
  EngineOptions caching = Plain();
  caching.prefix_caching = true;
  caching.prefix_snapshot_interval = 128;
  auto e = Engine::Create(m.factory, with_hidden(caching, References(two, two_want))).value();
  EXPECT_EQ(Collect(*e->Submit(two[0]).value()), two_want[0]);
  const EngineStats first = e->Stats();
  EXPECT_GT(first.spec_verifications, 0);
  EXPECT_EQ(Collect(*e->Submit(two[1]).value()), two_want[1]);
  const EngineStats second = e->Stats();
  EXPECT_EQ(second.prefix_hits, 1);
  EXPECT_EQ(second.spec_verifications, first.spec_verifications);
  EXPECT_EQ(log->contract_breaches, 0);
  EXPECT_EQ(KvBytesAfterClearingCache(*e), 0);
}

// The checkpoint's own drafter (the tiny V4's April MTP layer, which `auto` picks): outputs
// identical to decoding without it, greedy and sampled, with chunked prefill, K = 1 and 4.
// (Its random weights draft poorly; only the oracles above reach long accepted runs.)
TEST(Speculative, CheckpointMtpDrafterGivesIdenticalOutput) {
  const std::vector<GenerationRequest> reqs = Mixed(4, 71);
  EngineStats plain_stats;
  const auto want = RunAll(V4(), Plain(), reqs, &plain_stats);
  for (int64_t k : {1, 4}) {
    SCOPED_TRACE(k);
    EngineOptions o = Plain();
    o.speculative = SpeculativeMode::kMtp;
    o.draft_tokens = k;
    o.max_num_batched_tokens = 32;
    EngineStats st;
    EXPECT_EQ(RunAll(V4(), o, reqs, &st), want);
    EXPECT_GT(st.spec_verifications, 0);
    EXPECT_EQ(st.spec_drafted_at.size(), static_cast<size_t>(k));
    EXPECT_EQ(st.kv.used_bytes, 0);
  }
  auto e = Engine::Create(V4().factory, EngineOptions{}).value();
  EXPECT_EQ(e->drafter_name(), "mtp");
}

// The 0731 layout's DSpark drafter (which `auto` picks there): outputs identical to decoding
// without it, greedy and sampled, with chunked prefill, K = 2 and the block size 5.
TEST(Speculative, CheckpointDsparkDrafterGivesIdenticalOutput) {
  const Model dspark{"v4-0731", engine_test::TinyDspark(),
                     checkpoint::WithDrafter(checkpoint::TinyV4Config(),
                                             checkpoint::DraftFamily::kDspark)};
  const std::vector<GenerationRequest> reqs = Mixed(4, 73);
  EngineStats plain_stats;
  const auto want = RunAll(dspark, Plain(), reqs, &plain_stats);
  for (int64_t k : {2, 5}) {
    SCOPED_TRACE(k);
    EngineOptions o = Plain();
    o.speculative = SpeculativeMode::kDspark;
    o.draft_tokens = k;
    o.max_num_batched_tokens = 32;
    EngineStats st;
    EXPECT_EQ(RunAll(dspark, o, reqs, &st), want);
    EXPECT_GT(st.spec_verifications, 0);
    EXPECT_EQ(st.spec_drafted_at.size(), static_cast<size_t>(k));
    EXPECT_EQ(st.kv.used_bytes, 0);
  }
  auto e = Engine::Create(dspark.factory, EngineOptions{}).value();
  EXPECT_EQ(e->drafter_name(), "dspark");
  EXPECT_EQ(e->draft_tokens(), 5);
}

// A request may opt out; the others still speculate.
TEST(Speculative, RequestsMayOptOut) {
  std::vector<GenerationRequest> reqs = Mixed(2, 21);
  EngineStats st;
  const auto want = RunAll(V4(), Plain(), reqs, &st);
  reqs[0].speculative = false;
  const auto got = RunAll(V4(), WithOracle(Plain(), References(reqs, want), Always, 2), reqs, &st);
  EXPECT_EQ(got, want);
  const Expected e = Simulate({reqs[1]}, Always, 2);
  ExpectCounters(st, e);
}

// Which drafter runs, and clear refusals for what cannot.
TEST(Speculative, OptionsPickTheDrafterOrSayWhyNot) {
  EngineOptions o;
  o.speculative = SpeculativeMode::kOff;
  auto off = Engine::Create(V4().factory, o).value();
  EXPECT_EQ(off->drafter_name(), "");
  EXPECT_EQ(off->draft_tokens(), 0);
  EXPECT_EQ(off->speculative_summary(), "off");

  // A checkpoint without a drafter: auto is off, mtp / dspark are errors.
  const ModelFactory no_drafter = []() -> Result<std::unique_ptr<runner::LoadedModel>> {
    DSV4_ASSIGN_OR_RETURN(checkpoint::Checkpoint ck, fixtures::BuiltinDefaultModel());
    ck.drafter = checkpoint::DraftFamily::kNone;  // as `make-tiny --layout none` writes it
    return runner::LoadCheckpoint(std::move(ck), "no drafter");
  };
  o.speculative = SpeculativeMode::kAuto;
  EXPECT_EQ(Engine::Create(no_drafter, o).value()->speculative_summary(),
            "off (the checkpoint has no drafter)");
  o.speculative = SpeculativeMode::kMtp;
  Status s = Engine::Create(no_drafter, o).status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("has no April MTP drafter (its checkpoint's drafter: none)"));
  // The tiny V4 checkpoint has the April MTP layer, not DSpark.
  o.speculative = SpeculativeMode::kDspark;
  EXPECT_THAT(Engine::Create(V4().factory, o).status().message(),
              HasSubstr("has no DSpark drafter (its checkpoint's drafter: April MTP)"));

  const std::vector<std::vector<int32_t>> none;
  auto oracle = Engine::Create(V4().factory, WithOracle(EngineOptions{}, none, Always, 3)).value();
  EXPECT_EQ(oracle->drafter_name(), "oracle");
  EXPECT_EQ(oracle->draft_tokens(), 3);
  EXPECT_EQ(oracle->speculative_summary(), "oracle, 3 draft tokens");
  EXPECT_EQ(oracle->Stats().spec_drafted_at, std::vector<int64_t>(3, 0));
  // K: 0 means the drafter's maximum; more than it proposes, or negative, is refused.
  EngineOptions k = WithOracle(EngineOptions{}, none, Always, 3);
  k.draft_tokens = 0;
  EXPECT_EQ(Engine::Create(V4().factory, k).value()->draft_tokens(), 3);
  k.draft_tokens = 4;
  EXPECT_THAT(Engine::Create(V4().factory, k).status().message(),
              HasSubstr("draft tokens 4 exceed what the oracle drafter proposes (at most 3)"));
  k.draft_tokens = -1;
  EXPECT_EQ(Engine::Create(V4().factory, k).status().code(), StatusCode::kInvalidArgument);

  // A model whose sequences cannot roll back (the KV-accounting stand-in).
  EngineOptions big = WithOracle(EngineOptions{}, none, Always, 2);
  big.kv_budget_bytes = int64_t{40} << 30;
  s = Engine::Create([] { return runner::AccountingModel("v4-flash"); }, big).status();
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("cannot roll back rejected drafts"));
  big.drafter = nullptr;
  big.speculative = SpeculativeMode::kAuto;
  EXPECT_EQ(Engine::Create([] { return runner::AccountingModel("v4-flash"); }, big)
                .value()
                ->drafter_name(),
            "");
  // A drafter that reads hidden rows the model does not provide.
  EngineOptions hidden;
  hidden.drafter = [](const runner::LoadedModel& m) -> Result<std::unique_ptr<runner::Drafter>> {
    return std::unique_ptr<runner::Drafter>(std::make_unique<engine_test::OracleDrafter>(
        std::vector<std::vector<int32_t>>{}, Always, 1, m.lm->config().vocab_size,
        std::make_shared<OracleLog>(), /*hidden_width=*/4));
  };
  s = Engine::Create(V32().factory, hidden).status();
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("reads the target's hidden states"));
}

}  // namespace
}  // namespace dsv4
