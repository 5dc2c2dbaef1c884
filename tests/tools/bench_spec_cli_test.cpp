// dsv4 bench spec: every (k, alpha) row is printed after the run without speculation, the JSON
// parses with one record per run, full acceptance accepts every draft, and bad flags are
// refused. Small sizes; no timing thresholds.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli_runner.h"

namespace dsv4::cli_test {
namespace {

using ::testing::HasSubstr;

TEST(BenchSpecCli, TablePrintsEveryRow) {
  CmdResult r = Dsv4("bench spec --requests 2 --prompt-len 16 --output-len 6 "
                     "--draft-tokens 1,2 --acceptance 0,1 --threads 1 --repeats 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("replay drafter"));
  EXPECT_THAT(r.output, HasSubstr("decode tok/s"));
  EXPECT_THAT(r.output, HasSubstr("off "));
  EXPECT_THAT(r.output, HasSubstr("bench spec: 6 runs (5 configurations x 1 rounds)"));
  for (const char* row : {"1   0.00", "1   1.00", "2   0.00", "2   1.00"}) {
    EXPECT_THAT(r.output, HasSubstr(row)) << row;
  }
}

TEST(BenchSpecCli, JsonHasOneRecordPerRun) {
  CmdResult r = Dsv4("bench spec --requests 2 --prompt-len 16 --output-len 6 "
                     "--draft-tokens 2 --acceptance 0,0.5,1 --threads 1 --repeats 2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // stderr's summary line comes with the output: parse from the first bracket to the last.
  const size_t from = r.output.find('[');
  ASSERT_NE(from, std::string::npos) << r.output;
  const std::string js = r.output.substr(from, r.output.rfind(']') + 1 - from);
  const nlohmann::json j = nlohmann::json::parse(js);
  ASSERT_EQ(j.size(), 4u);
  EXPECT_EQ(j[0]["draft_tokens"], 0);
  EXPECT_DOUBLE_EQ(j[1]["acceptance_rate"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(j[3]["acceptance_rate"].get<double>(), 1.0);
  EXPECT_GT(j[3]["mean_accepted_length"].get<double>(), 1.0);
  for (const auto& row : j) {
    EXPECT_GT(row["decode_tokens_per_s"].get<double>(), 0.0);
    EXPECT_GT(row["speedup"].get<double>(), 0.0);
  }
}

TEST(BenchSpecCli, RefusesAnAcceptanceOutsideZeroToOne) {
  CmdResult r = Dsv4("bench spec --requests 1 --prompt-len 8 --output-len 4 --acceptance 1.5");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("--acceptance"));
}

}  // namespace
}  // namespace dsv4::cli_test
