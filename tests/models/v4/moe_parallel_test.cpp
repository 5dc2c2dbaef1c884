// The V4 MoE across expert-parallel ranks, every rank a thread of this process
// (fixtures::OnEveryRank): bit-identical to the one-process MoeForward for any expert map and
// any rows per rank (none included), hash-routed and score-routed layers alike. The mpirun
// end-to-end checks are tests/tools/ep_cli_test.cpp.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "core/rng.h"
#include "dist/expert_parallel.h"
#include "models/v4/moe.h"
#include "models/v4/moe_parallel.h"
#include "models/v4/weights.h"
#include "testing/thread_communicator.h"
#include "testing/weight_generator.h"

namespace dsv4::v4 {
namespace {

TEST(V4MoeParallel, AcrossRanksIsBitIdenticalToOneProcess) {
  const checkpoint::Checkpoint ck = fixtures::BuiltinDefaultModel().value();
  const checkpoint::ModelConfig& c = ck.config;
  const int64_t D = c.hidden_size, E = c.n_routed_experts;
  const std::unique_ptr<ModelWeights> all = LoadWeights(c, *ck.weights).value();
  // Rows per rank (some none) with their tokens, for a hash-routed and a score-routed layer.
  const std::vector<int64_t> layers = {0, c.num_hidden_layers - 1};
  ASSERT_NE(all->layers[0].tid2eid, nullptr);
  ASSERT_EQ(all->layers[layers[1]].tid2eid, nullptr);
  const std::vector<int64_t> rows = {6, 0, 3, 1};
  Rng rng(7);
  std::vector<std::vector<BF16>> x;      // [rank]: BF16 [n, D]
  std::vector<std::vector<int32_t>> tok;  // [rank]: [n]
  std::vector<std::vector<std::vector<BF16>>> expected(layers.size());  // [layer][rank]
  ThreadPool one(1);
  kernels::Workspace ws;
  MoeScratch local;
  for (int64_t n : rows) {
    std::vector<BF16>& in = x.emplace_back(static_cast<size_t>(n * D));
    for (BF16& v : in) v = F32ToBf16(static_cast<float>(rng.Normal()));
    std::vector<int32_t>& t = tok.emplace_back();
    for (int64_t i = 0; i < n; ++i) t.push_back(static_cast<int32_t>(rng.Below(c.vocab_size)));
    for (size_t l = 0; l < layers.size(); ++l) {
      std::vector<BF16>& out = expected[l].emplace_back(in.size());
      MoeForward(one, c, all->layers[layers[l]], t.data(), in.data(), n, out.data(), &local, &ws);
    }
  }
  for (const dist::ExpertMap& map :
       {dist::ExpertMap::Contiguous(E, 4).value(),
        dist::ExpertMap::Parse("0: 1 2 5\n1: 0 3 4 6 7\n", "uneven", E, 2).value()}) {
    SCOPED_TRACE(std::to_string(map.num_ranks()) + " ranks, rank 0 " + map.Describe(0));
    std::vector<std::vector<std::vector<BF16>>> got(layers.size());
    for (auto& g : got) g.resize(static_cast<size_t>(map.num_ranks()));
    fixtures::OnEveryRank(map, [&](int r, std::shared_ptr<dist::ExpertParallel> ep) {
      checkpoint::LoadOptions o;
      o.check_finite = false;  // the one-process load above checked every tensor
      o.expert_parallel = ep;
      const std::unique_ptr<ModelWeights> mine = LoadWeights(c, *ck.weights, o).value();
      ThreadPool pool(1);
      kernels::Workspace rank_ws;
      MoeScratch s;
      for (size_t l = 0; l < layers.size(); ++l) {
        std::vector<BF16>& out = got[l][r];
        out.resize(x[r].size());
        MoeForwardParallel(pool, c, mine->layers[layers[l]], *ep, tok[r].data(), x[r].data(),
                           rows[r], out.data(), &s, &rank_ws);
      }
    });
    for (size_t l = 0; l < layers.size(); ++l) {
      for (int r = 0; r < map.num_ranks(); ++r) {
        const std::vector<BF16>& g = got[l][r];
        const std::vector<BF16>& want = expected[l][r];
        ASSERT_EQ(g.size(), want.size());
        EXPECT_EQ(std::memcmp(g.data(), want.data(), g.size() * sizeof(BF16)), 0)
            << "layer " << layers[l] << " rank " << r;
      }
    }
  }
}

}  // namespace
}  // namespace dsv4::v4
