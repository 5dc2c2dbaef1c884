// Expert placement: contiguous ranges, map files and their errors.
#include "dist/expert_map.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace dsv4::dist {
namespace {

using ::testing::HasSubstr;

TEST(ExpertMap, ContiguousRangesCoverEveryExpertOnce) {
  const ExpertMap m = ExpertMap::Contiguous(8, 4).value();
  EXPECT_EQ(m.num_ranks(), 4);
  EXPECT_EQ(m.owners(), (std::vector<int32_t>{0, 0, 1, 1, 2, 2, 3, 3}));
  EXPECT_EQ(m.Describe(1), "experts 2-3 of 8");
  // Uneven: range sizes differ by at most one.
  const ExpertMap u = ExpertMap::Contiguous(10, 3).value();
  EXPECT_EQ(u.count(0), 3);
  EXPECT_EQ(u.count(1), 3);
  EXPECT_EQ(u.count(2), 4);
  EXPECT_THAT(ExpertMap::Contiguous(8, 9).status().message(),
              HasSubstr("expected 1 to the model's 8 routed experts"));
}

TEST(ExpertMap, ParsesRanksIdsAndRanges) {
  const ExpertMap m =
      ExpertMap::Parse("# balanced by load\n0: 0, 7\n\n1: 1-3 6\n2: 4,5  # hot pair\n", "m.txt", 8, 3)
          .value();
  EXPECT_EQ(m.owners(), (std::vector<int32_t>{0, 1, 1, 1, 2, 2, 1, 0}));
  EXPECT_EQ(m.Describe(0), "experts 0, 7 of 8");
  EXPECT_EQ(m.Describe(1), "experts 1-3, 6 of 8");
  // A rank may hold none.
  const ExpertMap none = ExpertMap::Parse("0: 0-3\n", "m.txt", 4, 2).value();
  EXPECT_EQ(none.Describe(1), "experts none of 4");
}

TEST(ExpertMap, ErrorsNameTheFileLineAndProblem) {
  auto err = [](std::string_view text) {
    return ExpertMap::Parse(text, "m.txt", 4, 2).status().message();
  };
  EXPECT_EQ(err("0 0-3\n"), "m.txt line 1: expected \"<rank>: <experts>\", got \"0 0-3\"");
  EXPECT_EQ(err("\n2: 0-3\n"), "m.txt line 2: rank 2, expected 0..1");
  EXPECT_EQ(err("0: 0-1\n0: 2-3\n"), "m.txt line 2: rank 0 listed twice");
  EXPECT_EQ(err("0: 0-4\n"), "m.txt line 1: expert 4, expected 0..3");
  EXPECT_EQ(err("0: 0-2\n1: 2-3\n"), "m.txt line 2: expert 2 already held by rank 0");
  EXPECT_EQ(err("0: 0, x\n"), "m.txt line 1: \"x\" is not an expert id or a range a-b");
  EXPECT_EQ(err("0: 3-1\n"), "m.txt line 1: \"3-1\" is not an expert id or a range a-b");
  EXPECT_EQ(err("0: 0-2\n"),
            "m.txt: expert 3 is held by no rank (every expert 0..3 must be listed once)");
  EXPECT_THAT(ExpertMap::ReadFile("/nonexistent/map.txt", 4, 2).status().message(),
              HasSubstr("/nonexistent/map.txt"));
}

}  // namespace
}  // namespace dsv4::dist
