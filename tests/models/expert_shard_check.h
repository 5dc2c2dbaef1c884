// Expert parallelism at load, for either model: each rank reads its own routed experts'
// tensors and every replicated tensor, never another rank's experts, the bytes it reads are
// the share `dsv4 inspect --ep N` reports (checkpoint::CountShardBytes), and together the
// ranks read what one process reads.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <string>

#include "core/function_ref.h"
#include "checkpoint/checkpoint.h"
#include "checkpoint/expert_shard.h"
#include "checkpoint/load_options.h"
#include "dist/expert_parallel.h"
#include "testing/recording_source.h"

namespace dsv4::test {

// Loads the main model of `ck` from `source` with `options` and returns, per layer and routed
// expert, whether it was loaded: [layers][E] (a dense layer's row empty).
using ShardLoadFn = FunctionRef<std::vector<std::vector<bool>>(
    const checkpoint::TensorSource& source, const checkpoint::LoadOptions& options)>;

inline void ExpectEachRankReadsItsShare(const checkpoint::Checkpoint& ck, ShardLoadFn load) {
  const checkpoint::ModelConfig& c = ck.config;
  fixtures::RecordingSource all(*ck.weights);
  load(all, {});
  for (int N : {2, 4}) {
    const dist::ExpertMap map = dist::ExpertMap::Contiguous(c.n_routed_experts, N).value();
    const checkpoint::ShardBytes shares =
        checkpoint::CountShardBytes(checkpoint::StoredTensors(*ck.weights, c, false), map);
    std::set<std::string> union_of_ranks;
    for (int r = 0; r < N; ++r) {
      SCOPED_TRACE("rank " + std::to_string(r) + " of " + std::to_string(N));
      fixtures::RecordingSource src(*ck.weights);
      checkpoint::LoadOptions o;
      o.expert_parallel = std::make_shared<dist::ExpertParallel>(map, r);
      const std::vector<std::vector<bool>> loaded = load(src, o);
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
      for (size_t l = 0; l < loaded.size(); ++l) {
        for (size_t e = 0; e < loaded[l].size(); ++e) {
          EXPECT_EQ(loaded[l][e], map.owner(static_cast<int64_t>(e)) == r)
              << "layer " << l << " expert " << e;
        }
      }
    }
    // Together the ranks read what one process reads.
    EXPECT_EQ(union_of_ranks, all.got());
  }
}

}  // namespace dsv4::test
