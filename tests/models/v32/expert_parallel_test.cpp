// DeepSeek-V3.2 under expert parallelism, every rank a thread of this process
// (fixtures::ThreadCommunicators): each rank loads only its routed experts; the MoE across
// ranks equals the one-process MoE bit for bit for any expert map and any rows per rank
// (none included); whole forward steps, with rank 0 stepping and the others following and
// with every rank running its own sequences (data-parallel serving), give the logits of one
// process. The mpirun end-to-end checks are tests/tools/ep_cli_test.cpp.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "core/rng.h"
#include "dist/expert_parallel.h"
#include "models/v32/model.h"
#include "models/v32/moe.h"
#include "models/v32/weights.h"
#include "testing/thread_communicator.h"
#include "testing/weight_generator.h"
#include "../expert_shard_check.h"

namespace dsv4::v32 {
namespace {

const checkpoint::Checkpoint& Tiny() {
  static const checkpoint::Checkpoint* ck =
      new checkpoint::Checkpoint(fixtures::BuiltinTinyV32Model().value());
  return *ck;
}

std::vector<dist::ExpertMap> Maps(int64_t E) {
  return {dist::ExpertMap::Contiguous(E, 2).value(), dist::ExpertMap::Contiguous(E, 4).value(),
          dist::ExpertMap::Parse("0: 0,2,4,6\n1: 1 3 5 7\n", "interleaved", E, 2).value()};
}

TEST(V32ExpertParallel, EachRankReadsItsExpertsAndTheReplicatedRestOnly) {
  const checkpoint::Checkpoint& ck = Tiny();
  test::ExpectEachRankReadsItsShare(
      ck, [&](const checkpoint::TensorSource& src, const checkpoint::LoadOptions& o) {
        std::unique_ptr<ModelWeights> w = LoadWeights(ck.config, src, o).value();
        std::vector<std::vector<bool>> loaded;
        for (const LayerWeights& lw : w->layers) {
          loaded.emplace_back();
          for (const FfnWeights& e : lw.experts) loaded.back().push_back(e.gate.out > 0);
        }
        return loaded;
      });
}

TEST(V32ExpertParallel, MoeAcrossRanksIsBitIdenticalToOneProcess) {
  const checkpoint::Checkpoint& ck = Tiny();
  const checkpoint::ModelConfig& c = ck.config;
  const int64_t D = c.hidden_size, layer = c.first_k_dense_replace;
  const std::unique_ptr<ModelWeights> all = LoadWeights(c, *ck.weights).value();
  // Rows per rank, two calls (the scratch is reused): some ranks have none.
  const std::vector<std::vector<int64_t>> rows = {{7, 0, 3, 1}, {0, 5, 1, 0}};
  Rng rng(5);
  std::vector<std::vector<std::vector<BF16>>> x(2), expected(2);  // [call][rank]: [n, D]
  ThreadPool one(1);
  kernels::Workspace ws;
  MoeScratch local;
  for (size_t call = 0; call < 2; ++call) {
    for (int64_t n : rows[call]) {
      std::vector<BF16>& in = x[call].emplace_back(static_cast<size_t>(n * D));
      for (BF16& v : in) v = F32ToBf16(static_cast<float>(rng.Normal()));
      std::vector<BF16>& out = expected[call].emplace_back(in.size());
      MoeForward(one, c, all->layers[layer], in.data(), n, out.data(), &local, &ws);
    }
  }
  for (const dist::ExpertMap& map : Maps(c.n_routed_experts)) {
    SCOPED_TRACE(std::to_string(map.num_ranks()) + " ranks, rank 0 " + map.Describe(0));
    std::vector<std::vector<std::vector<BF16>>> got(2);
    for (auto& g : got) g.resize(static_cast<size_t>(map.num_ranks()));
    fixtures::OnEveryRank(map, [&](int r, std::shared_ptr<dist::ExpertParallel> ep) {
      checkpoint::LoadOptions o;
      o.expert_parallel = ep;
      const std::unique_ptr<ModelWeights> mine = LoadWeights(c, *ck.weights, o).value();
      ThreadPool pool(1);
      kernels::Workspace rank_ws;
      MoeScratch s;
      for (size_t call = 0; call < 2; ++call) {
        const std::vector<BF16>& in = x[call][r];
        std::vector<BF16>& out = got[call][r];
        out.resize(in.size());
        MoeForwardParallel(pool, c, mine->layers[layer], *ep, in.data(), rows[call][r],
                           out.data(), &s, &rank_ws);
      }
    });
    for (size_t call = 0; call < 2; ++call) {
      for (int r = 0; r < map.num_ranks(); ++r) {
        const std::vector<BF16>& g = got[call][r];
        const std::vector<BF16>& want = expected[call][r];
        ASSERT_EQ(g.size(), want.size());
        EXPECT_EQ(std::memcmp(g.data(), want.data(), g.size() * sizeof(BF16)), 0)
            << "call " << call << " rank " << r;
      }
    }
  }
}

// Logits of `tokens` fed to a fresh sequence of `m` in steps of `steps` tokens, alone.
std::vector<float> Alone(const Model& m, std::span<const int32_t> tokens,
                         const std::vector<int64_t>& steps) {
  ThreadPool pool(1);
  kv::V32SequenceCache cache(m.config());
  std::vector<float> all, part;
  size_t at = 0;
  for (int64_t n : steps) {
    EXPECT_TRUE(m.Forward(pool, cache, tokens.subspan(at, n), LogitsMode::kAll, &part).ok());
    all.insert(all.end(), part.begin(), part.end());
    at += static_cast<size_t>(n);
  }
  return all;
}

TEST(V32ExpertParallel, StepsAreBitIdenticalToOneProcess) {
  const checkpoint::Checkpoint& ck = Tiny();
  const checkpoint::ModelConfig& c = ck.config;
  const std::unique_ptr<Model> one = Model::Create(c, *ck.weights).value();
  // Two sequences: a chunked prefill then decode steps each; per step (a, b) tokens.
  const std::vector<int32_t> a = {5, 17, 300, 42, 9, 11, 400, 2, 77, 13, 21};
  const std::vector<int32_t> b = {8, 1, 250, 99, 3};
  const std::vector<int64_t> steps_a = {6, 3, 1, 1}, steps_b = {2, 0, 2, 1};
  const std::vector<float> want_a = Alone(*one, a, steps_a), want_b = Alone(*one, b, {2, 2, 1});
  for (const dist::ExpertMap& map : Maps(c.n_routed_experts)) {
    SCOPED_TRACE(std::to_string(map.num_ranks()) + " ranks, rank 0 " + map.Describe(0));
    // Rank 0 runs both sequences, batched; the others follow with zero rows.
    std::vector<float> got_a, got_b;
    fixtures::OnEveryRank(map, [&](int r, std::shared_ptr<dist::ExpertParallel> ep) {
      checkpoint::LoadOptions o;
      o.expert_parallel = ep;
      const std::unique_ptr<Model> m = Model::Create(c, *ck.weights, o).value();
      ThreadPool pool(1);
      if (r != 0) {
        EXPECT_TRUE(m->FollowSteps(pool).ok());
        return;
      }
      kv::V32SequenceCache ca(c), cb(c);
      std::vector<float> la, lb;
      size_t at_a = 0, at_b = 0;
      for (size_t s = 0; s < steps_a.size(); ++s) {
        const std::vector<Model::BatchItem> batch = {
            {&ca, std::span(a).subspan(at_a, steps_a[s]), LogitsMode::kAll, &la},
            {&cb, std::span(b).subspan(at_b, steps_b[s]), LogitsMode::kAll, &lb}};
        EXPECT_TRUE(m->ForwardBatch(pool, batch).ok());
        got_a.insert(got_a.end(), la.begin(), la.end());
        got_b.insert(got_b.end(), lb.begin(), lb.end());
        at_a += steps_a[s];
        at_b += steps_b[s];
      }
      ep->Finish();
    });
    EXPECT_TRUE(got_a == want_a);
    EXPECT_TRUE(got_b == want_b);

    // Data-parallel steps: rank 0 runs a, rank 1 runs b, in the same agreed steps; a rank
    // with nothing in a step joins it with zero rows.
    std::vector<float> dp_a, dp_b;
    fixtures::OnEveryRank(map, [&](int r, std::shared_ptr<dist::ExpertParallel> ep) {
      ep->set_steps_agreed(true);
      checkpoint::LoadOptions o;
      o.expert_parallel = ep;
      const std::unique_ptr<Model> m = Model::Create(c, *ck.weights, o).value();
      ThreadPool pool(1);
      const std::vector<int32_t>* tokens = r == 0 ? &a : r == 1 ? &b : nullptr;
      const std::vector<int64_t>& steps = r == 0 ? steps_a : steps_b;
      std::vector<float>* out = r == 0 ? &dp_a : &dp_b;
      kv::V32SequenceCache cache(c);
      std::vector<float> l;
      size_t at = 0;
      for (size_t s = 0; s < steps_a.size(); ++s) {
        if (tokens == nullptr || steps[s] == 0) {
          EXPECT_TRUE(m->JoinStep(pool).ok());
          continue;
        }
        EXPECT_TRUE(
            m->Forward(pool, cache, std::span(*tokens).subspan(at, steps[s]), LogitsMode::kAll, &l)
                .ok());
        out->insert(out->end(), l.begin(), l.end());
        at += static_cast<size_t>(steps[s]);
      }
    });
    EXPECT_TRUE(dp_a == want_a);
    EXPECT_TRUE(dp_b == want_b);
  }
}

TEST(V32ExpertParallel, RunningNeedsACommunicator) {
  const checkpoint::Checkpoint& ck = Tiny();
  checkpoint::LoadOptions o;
  o.expert_parallel = std::make_shared<dist::ExpertParallel>(
      dist::ExpertMap::Contiguous(ck.config.n_routed_experts, 2).value(), 0);
  EXPECT_THAT(Model::Create(ck.config, *ck.weights, o).status().message(),
              ::testing::HasSubstr("expert parallelism without a communicator"));
  const std::unique_ptr<Model> one = Model::Create(ck.config, *ck.weights).value();
  ThreadPool pool(1);
  EXPECT_THAT(one->FollowSteps(pool).message(), ::testing::HasSubstr("not loaded with expert"));
  EXPECT_THAT(one->JoinStep(pool).message(), ::testing::HasSubstr("not loaded with expert"));
}

}  // namespace
}  // namespace dsv4::v32
