// The engine's policy units alone, without a model: stop conditions, prefix-cache stop
// points, the request limits (table-driven), auto mode's switch-off and cost meter, and the
// drafter-state layout kept with cached prefixes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "engine/draft_snapshot.h"
#include "engine/draft_switch.h"
#include "engine/prefix_policy.h"
#include "engine/request_check.h"
#include "engine/stop_condition.h"
#include "checkpoint/presets.h"

namespace dsv4::engine {
namespace {

TEST(StopAfter, EosStopIdsAndLength) {
  const StopConditions stop{.max_new_tokens = 3, .ignore_eos = false, .stop_token_ids = {7}};
  EXPECT_EQ(StopAfter(stop, /*eos=*/1, 5, 1), FinishReason::kNone);
  EXPECT_EQ(StopAfter(stop, 1, 1, 1), FinishReason::kStop);
  EXPECT_EQ(StopAfter(stop, 1, 7, 2), FinishReason::kStop);
  EXPECT_EQ(StopAfter(stop, 1, 5, 3), FinishReason::kLength);
  EXPECT_EQ(StopAfter(stop, 1, 1, 3), FinishReason::kStop);  // a stop token wins at the limit
  StopConditions ignore = stop;
  ignore.ignore_eos = true;
  EXPECT_EQ(StopAfter(ignore, 1, 1, 1), FinishReason::kNone);
  EXPECT_EQ(StopAfter(ignore, 1, 7, 2), FinishReason::kNone);
  EXPECT_EQ(StopAfter(ignore, 1, 7, 3), FinishReason::kLength);
}

// Counted, never timed: a drafter that never pays pauses after kMinVerifications
// verifications, for 8, then 16, 32, ... steps (up to 512); one that pays resets the back-off.
TEST(DraftSwitch, PausesWithBackOffAndResumes) {
  const auto cost = [](int64_t k) { return 1.0 + 0.5 * static_cast<double>(k); };  // k=2: 2
  DraftSwitch sw;
  EXPECT_EQ(sw.MaxDrafts(4), 4);
  int64_t expected_pause = DraftSwitch::kFirstBackoff;
  for (int round = 0; round < 9; ++round) {
    for (int64_t i = 1; i < DraftSwitch::kMinVerifications; ++i) {
      EXPECT_FALSE(sw.Observe(2, 0, cost));
      EXPECT_TRUE(sw.drafting());
    }
    EXPECT_TRUE(sw.Observe(2, 0, cost));
    EXPECT_FALSE(sw.drafting());
    EXPECT_EQ(sw.pauses(), round + 1);
    int64_t steps = 1;
    while (!sw.Tick()) ++steps;
    EXPECT_EQ(steps, expected_pause) << round;
    EXPECT_TRUE(sw.drafting());
    EXPECT_EQ(sw.MaxDrafts(4), 1);  // probing with one draft
    expected_pause = std::min(2 * expected_pause, DraftSwitch::kMaxBackoff);
  }
  // Paying verifications (1 + 1.5 accepted >= 2) keep drafting and reset the back-off.
  for (int i = 0; i < 20; ++i) EXPECT_FALSE(sw.Observe(2, i % 4 == 0 ? 1 : 2, cost));
  EXPECT_EQ(sw.MaxDrafts(4), 4);  // it pays: k drafts again
  int64_t misses = 1;
  while (!sw.Observe(2, 0, cost)) ++misses;
  EXPECT_LE(misses, DraftSwitch::kMinVerifications);  // the EWMA falls below within a few
  EXPECT_FALSE(sw.drafting());
  int64_t steps = 1;
  while (!sw.Tick()) ++steps;
  EXPECT_EQ(steps, DraftSwitch::kFirstBackoff);
  // An unknown cost: one step without drafts to measure one, not counted as a pause.
  DraftSwitch unknown;
  const auto none = [](int64_t) { return -1.0; };
  EXPECT_FALSE(unknown.Observe(1, 0, none));  // the first verification: measure at once
  EXPECT_FALSE(unknown.drafting());
  EXPECT_TRUE(unknown.Tick());
  for (int64_t i = 2; i < DraftSwitch::kMinVerifications; ++i) {
    EXPECT_FALSE(unknown.Observe(1, 0, none));
    EXPECT_TRUE(unknown.drafting());
  }
  EXPECT_FALSE(unknown.Observe(1, 0, none));  // must decide, still unknown: measure again
  EXPECT_FALSE(unknown.drafting());
  EXPECT_TRUE(unknown.Tick());
  EXPECT_EQ(unknown.pauses(), 0);
}

TEST(StepCostMeter, OneTokenStepsAndExtraRows) {
  StepCostMeter m;
  EXPECT_LT(m.Cost(1), 0);
  m.Record(2, 2, 3.0);  // a verify step before any one-token step: no baseline yet
  EXPECT_LT(m.Cost(1), 0);
  m.Record(2, 0, 2.0);  // 1 s per sequence
  EXPECT_LT(m.Cost(1), 0);
  m.Record(2, 4, 3.0);  // 1.5 s per sequence for 2 extra rows each: 0.25 s a row
  EXPECT_DOUBLE_EQ(m.Cost(1), 1.25);
  EXPECT_DOUBLE_EQ(m.Cost(4), 2.0);
}

TEST(DraftSnapshot, RoundTripAndBadBytes) {
  DraftSnapshot d{.drafter = "mtp", .position = 255, .row = {BF16{1}, BF16{2}, BF16{3}},
                  .state = {9, 8, 7, 6}};
  const std::vector<uint8_t> bytes = EncodeDraftSnapshot(d);
  Result<DraftSnapshot> back = DecodeDraftSnapshot(bytes);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->drafter, "mtp");
  EXPECT_EQ(back->position, 255);
  ASSERT_EQ(back->row.size(), 3u);
  EXPECT_EQ(back->row[2].bits, 3);
  EXPECT_EQ(back->state, d.state);
  EXPECT_EQ(DecodeDraftSnapshot({bytes.data(), 10}).status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(DecodeDraftSnapshot({bytes.data(), bytes.size() - 1}).status().code(),
            StatusCode::kDataLoss);
  std::vector<uint8_t> bad = bytes;
  bad[0] = 'x';
  EXPECT_THAT(DecodeDraftSnapshot(bad).status().message(), ::testing::HasSubstr("DSV4DRFT"));
  bad = bytes;
  bad[8] = 2;
  EXPECT_EQ(DecodeDraftSnapshot(bad).status().code(), StatusCode::kFailedPrecondition);
}

TEST(PrefixPolicy, StopPointsAndOptions) {
  auto p = PrefixPolicy::Create({.enabled = true, .snapshot_interval = 256}).value();
  EXPECT_EQ(p->StopPoints(128), std::vector<int64_t>());  // leaves >= 1 token to compute
  EXPECT_EQ(p->StopPoints(129), std::vector<int64_t>({128}));
  EXPECT_EQ(p->StopPoints(700), std::vector<int64_t>({256, 512, 640}));
  EXPECT_EQ(p->StopPoints(769), std::vector<int64_t>({256, 512, 768}));
  // Without the prompt-end stop only the interval's multiples remain (bench depth).
  auto interval_only = PrefixPolicy::Create({.enabled = true, .snapshot_interval = 256,
                                             .snapshot_prompt_end = false}).value();
  EXPECT_EQ(interval_only->StopPoints(700), std::vector<int64_t>({256, 512}));
  EXPECT_TRUE(interval_only->StopPoints(200).empty());
  EXPECT_EQ(interval_only->StopPoints(257), std::vector<int64_t>({256}));
  EXPECT_EQ(interval_only->StopPoints(769), std::vector<int64_t>({256, 512, 768}));
  auto off = PrefixPolicy::Create({.enabled = false, .snapshot_interval = 0}).value();  // the interval matters only when on
  EXPECT_TRUE(off->StopPoints(10000).empty());
  EXPECT_EQ(PrefixPolicy::Create({.enabled = true, .snapshot_interval = 100}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(PrefixPolicy::Create({.enabled = true, .snapshot_interval = 0}).status().message(), ::testing::HasSubstr("got 0"));
}

TEST(ValidateRequest, FirstProblemInOrder) {
  const checkpoint::ModelConfig c = checkpoint::TinyV4Config();
  const kv::PageLayout layout(c, kv::DefaultKvFormats(c.arch));
  const RequestLimits limits{.vocab_size = 512, .context = 1000, .layout = &layout,
                             .kv_budget_bytes = layout.BytesAt(500)};
  struct Case {
    std::vector<int32_t> prompt;
    int64_t max_new;
    float top_p;
    RequestProblem want;
    StatusCode code;
  };
  const std::vector<int32_t> ten(10, 3), thousand(1000, 3);
  const std::vector<Case> cases = {
      {{}, 1, 1, RequestProblem::kMalformed, StatusCode::kInvalidArgument},
      {{1, 512}, 1, 1, RequestProblem::kMalformed, StatusCode::kInvalidArgument},
      {{-1}, 1, 1, RequestProblem::kMalformed, StatusCode::kInvalidArgument},
      {thousand, 1, 1, RequestProblem::kPromptTooLong, StatusCode::kOutOfRange},
      {thousand, 0, 1, RequestProblem::kPromptTooLong, StatusCode::kOutOfRange},
      {ten, 0, 1, RequestProblem::kMalformed, StatusCode::kInvalidArgument},
      {ten, 5, 0, RequestProblem::kMalformed, StatusCode::kInvalidArgument},
      {ten, 991, 1, RequestProblem::kContextExceeded, StatusCode::kOutOfRange},
      {ten, 980, 1, RequestProblem::kKvBudgetExceeded, StatusCode::kOutOfRange},
      {ten, 490, 1, RequestProblem::kNone, StatusCode::kOk},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    GenerationRequest r;
    r.prompt = cases[i].prompt;
    r.stop.max_new_tokens = cases[i].max_new;
    r.sampling.top_p = cases[i].top_p;
    const RequestCheck got = ValidateRequest(r, limits);
    EXPECT_EQ(got.problem, cases[i].want) << i << ": " << got.status.ToString();
    EXPECT_EQ(got.status.code(), cases[i].code) << i;
  }
}

}  // namespace
}  // namespace dsv4::engine
