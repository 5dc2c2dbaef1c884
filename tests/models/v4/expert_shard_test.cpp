// Expert parallelism at load (V4): each rank reads its own routed experts' tensors and every
// replicated tensor, never another rank's experts, and the bytes it reads are the share
// `dsv4 inspect --ep N` reports (tests/models/expert_shard_check.h).
#include <memory>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "checkpoint/load_options.h"
#include "dist/expert_parallel.h"
#include "models/v4/model.h"
#include "models/v4/weights.h"
#include "testing/weight_generator.h"
#include "../expert_shard_check.h"

namespace dsv4::v4 {
namespace {

TEST(ExpertShard, EachRankReadsItsExpertsAndTheReplicatedRestOnly) {
  const checkpoint::Checkpoint ck = fixtures::BuiltinDefaultModel().value();
  test::ExpectEachRankReadsItsShare(
      ck, [&](const checkpoint::TensorSource& src, const checkpoint::LoadOptions& o) {
        std::unique_ptr<ModelWeights> w = LoadWeights(ck.config, src, o).value();
        std::vector<std::vector<bool>> loaded;
        for (const LayerWeights& lw : w->layers) {
          loaded.emplace_back();
          for (const ExpertWeights& e : lw.experts) loaded.back().push_back(e.w1.out > 0);
        }
        return loaded;
      });
}

TEST(ExpertShard, RunningNeedsACommunicator) {
  const checkpoint::Checkpoint ck = fixtures::BuiltinDefaultModel().value();
  checkpoint::LoadOptions o;
  o.expert_parallel = std::make_shared<dist::ExpertParallel>(
      dist::ExpertMap::Contiguous(ck.config.n_routed_experts, 2).value(), 0);
  EXPECT_THAT(Model::Create(ck.config, *ck.weights, o).status().message(),
              ::testing::HasSubstr("expert parallelism without a communicator"));
}

}  // namespace
}  // namespace dsv4::v4
