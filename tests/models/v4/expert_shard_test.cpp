// Expert parallelism at load: each rank reads its own routed experts' tensors and every
// replicated tensor, never another rank's experts, and the bytes it reads are the share
// `dsv4 inspect --ep N` reports (checkpoint::CountShardBytes).
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "checkpoint/expert_shard.h"
#include "checkpoint/load_options.h"
#include "dist/expert_parallel.h"
#include "models/v4/model.h"
#include "models/v4/weights.h"
#include "testing/weight_generator.h"

namespace dsv4::v4 {
namespace {

// Records the name of every tensor asked for (metadata or data).
class RecordingSource final : public checkpoint::TensorSource {
 public:
  explicit RecordingSource(const checkpoint::TensorSource& inner) : inner_(inner) {}
  std::string label() const override { return inner_.label(); }
  std::vector<std::string> names() const override { return inner_.names(); }
  bool Has(std::string_view name) const override { return inner_.Has(name); }
  Result<checkpoint::TensorView> Get(std::string_view name) const override {
    std::lock_guard<std::mutex> lock(mu_);
    got_.insert(std::string(name));
    return inner_.Get(name);
  }
  std::set<std::string> got() const {
    std::lock_guard<std::mutex> lock(mu_);
    return got_;
  }

 private:
  const checkpoint::TensorSource& inner_;
  mutable std::mutex mu_;
  mutable std::set<std::string> got_;
};

TEST(ExpertShard, EachRankReadsItsExpertsAndTheReplicatedRestOnly) {
  const checkpoint::Checkpoint ck = fixtures::BuiltinDefaultModel().value();
  const checkpoint::ModelConfig& c = ck.config;
  RecordingSource all(*ck.weights);
  ASSERT_TRUE(LoadWeights(c, all).ok());
  for (int N : {2, 4}) {
    const dist::ExpertMap map = dist::ExpertMap::Contiguous(c.n_routed_experts, N).value();
    const checkpoint::ShardBytes shares =
        checkpoint::CountShardBytes(checkpoint::StoredTensors(*ck.weights, c, false), map);
    std::set<std::string> union_of_ranks;
    for (int r = 0; r < N; ++r) {
      SCOPED_TRACE("rank " + std::to_string(r) + " of " + std::to_string(N));
      RecordingSource src(*ck.weights);
      checkpoint::LoadOptions o;
      o.expert_parallel = std::make_shared<dist::ExpertParallel>(map, r);
      std::unique_ptr<ModelWeights> w = LoadWeights(c, src, o).value();
      int64_t bytes = 0;
      for (const std::string& name : src.got()) {
        const std::optional<int64_t> e = checkpoint::RoutedExpertOf(name);
        if (e) {
          EXPECT_EQ(map.owner(*e), r) << name << " belongs to another rank";
        }
        bytes += static_cast<int64_t>(ck.weights->Get(name).value().bytes.size());
        union_of_ranks.insert(name);
      }
      EXPECT_EQ(bytes, shares.total(r));
      for (const LayerWeights& lw : w->layers) {
        for (int64_t e = 0; e < c.n_routed_experts; ++e) {
          EXPECT_EQ(lw.experts[e].w1.out > 0, map.owner(e) == r) << "layer " << lw.layer << " expert " << e;
        }
      }
    }
    // Together the ranks read what one process reads.
    EXPECT_EQ(union_of_ranks, all.got());
  }
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
