// dsv4 bench depth: llama-bench's tests (ppN / tgN at depths) on the built-in model and on a
// checkpoint folder, its JSON and markdown shapes, and its refusals. Small sizes; no timing
// thresholds (only that every sample was measured).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli_runner.h"

namespace dsv4::cli_test {
namespace {

using ::testing::HasSubstr;

TEST(BenchDepthCli, JsonRecordsPerTestAndDepth) {
  CmdResult r = Dsv4("bench depth -p 128 -n 3 -d 0,256 -r 2 -t 1 -o json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // stderr's summary line follows the JSON: parse up to the closing bracket.
  const std::string js = r.output.substr(0, r.output.rfind(']') + 1);
  const nlohmann::json j = nlohmann::json::parse(js);
  ASSERT_EQ(j.size(), 4u);
  const int64_t prompts[] = {128, 0, 128, 0}, gens[] = {0, 3, 0, 3}, depths[] = {0, 0, 256, 256};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(j[i]["n_prompt"], prompts[i]) << i;
    EXPECT_EQ(j[i]["n_gen"], gens[i]) << i;
    EXPECT_EQ(j[i]["n_depth"], depths[i]) << i;
    EXPECT_EQ(j[i]["n_threads"], 1);
    EXPECT_EQ(j[i]["samples_ns"].size(), 2u);
    EXPECT_GT(j[i]["avg_ts"].get<double>(), 0.0);
    EXPECT_GT(j[i]["model_size"].get<int64_t>(), 0);
    EXPECT_GT(j[i]["model_n_params"].get<int64_t>(), 0);
  }
  EXPECT_THAT(r.output, HasSubstr("bench depth: 4 tests x 2 repetitions"));
}

TEST(BenchDepthCli, MarkdownOnACheckpointFolder) {
  const auto dir = Fresh("bench_depth_ckpt");
  ASSERT_EQ(Dsv4("make-tiny --out " + dir.string()).exit_code, 0);
  CmdResult r = Dsv4("bench depth -m " + dir.string() + " -p 128 -n 2 -d 128 -r 1 -t 1 --chunk 64");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("| model"));
  EXPECT_THAT(r.output, HasSubstr("t/s |"));
  EXPECT_THAT(r.output, HasSubstr("pp128 @ d128"));
  EXPECT_THAT(r.output, HasSubstr("tg2 @ d128"));
  EXPECT_THAT(r.output, HasSubstr("| CPU"));
  EXPECT_THAT(r.output, HasSubstr("prefill chunk 64"));
}

TEST(BenchDepthCli, RefusesBadLists) {
  CmdResult r = Dsv4("bench depth -d 100 -r 1");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("granule), got 100"));
  r = Dsv4("bench depth -p 0 -n 0 -d 0");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("no test to run"));
  r = Dsv4("bench depth -o csv");
  EXPECT_NE(r.exit_code, 0);
  r = Dsv4("bench depth -d 4Q");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("-d"));
}

}  // namespace
}  // namespace dsv4::cli_test
