// ExpertGroups (src/models/common/expert_groups.h): the counting sort both MoE layers use.
#include <cstdint>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "models/common/expert_groups.h"

namespace dsv4::models {
namespace {

using ::testing::ElementsAre;

TEST(ExpertGroups, RowsAscendWithinEachExpertWithTheirWeights) {
  // 3 rows, k = 2, 4 experts; expert 3 is never chosen.
  const std::vector<int32_t> expert_of = {2, 0, 0, 2, 1, 0};
  const std::vector<float> weight_of = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f};
  ExpertGroups g;
  g.Build(expert_of, weight_of, 2, 4);
  EXPECT_THAT(g.start, ElementsAre(0, 3, 4, 6, 6));
  EXPECT_THAT(g.rows, ElementsAre(0, 1, 2, 2, 0, 1));
  EXPECT_THAT(g.weights, ElementsAre(0.2f, 0.3f, 0.6f, 0.5f, 0.1f, 0.4f));
  EXPECT_EQ(g.size(0), 3);
  EXPECT_EQ(g.size(3), 0);
  // Rebuilt on fewer rows, nothing of the first build remains.
  g.Build(std::vector<int32_t>{3, 1}, std::vector<float>{1.0f, 2.0f}, 2, 4);
  EXPECT_THAT(g.start, ElementsAre(0, 0, 1, 1, 2));
  EXPECT_THAT(g.rows, ElementsAre(0, 0));
  EXPECT_THAT(g.weights, ElementsAre(2.0f, 1.0f));
}

}  // namespace
}  // namespace dsv4::models
