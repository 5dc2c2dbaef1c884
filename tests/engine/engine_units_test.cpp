// The engine's policy units alone, without a model: stop conditions, prefix-cache stop
// points, and the request limits (table-driven).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

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
