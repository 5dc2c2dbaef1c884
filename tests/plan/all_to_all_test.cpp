// The expert all-to-all volume (plan/all_to_all.h) against hand-computed counts: the exact
// probability that a rank holds one of a token's experts, the engine's row and record sizes,
// symmetric per-GPU traffic, the split between the NVLink domain and the NIC.
#include "plan/all_to_all.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "checkpoint/presets.h"
#include "plan/args.h"
#include "plan/capacity.h"

namespace dsv4::plan {
namespace {

checkpoint::ModelConfig Preset(const char* name) {
  return checkpoint::PresetConfig(name).value();
}

AllToAllInputs Inputs(const checkpoint::ModelConfig& c, int64_t ep) {
  AllToAllInputs in;
  in.model = &c;
  in.layout.dp = ep;
  in.layout.ep = ep;
  return in;
}

TEST(AllToAll, RankHitProbabilityIsHypergeometric) {
  checkpoint::ModelConfig c = Preset("v4-flash");
  c.n_routed_experts = 8;
  c.num_experts_per_tok = 2;
  // Other rank holds 4 of 8 experts: P(miss) = C(4,2)/C(8,2) = 6/28.
  EXPECT_DOUBLE_EQ(RankHitProbability(c, 2), 1.0 - 6.0 / 28.0);
  // 2 of 8: P(miss) = C(6,2)/C(8,2) = 15/28.
  EXPECT_DOUBLE_EQ(RankHitProbability(c, 4), 1.0 - 15.0 / 28.0);
  // Every expert on its own rank, k = 2 picks: each other rank is hit with 2/8.
  EXPECT_NEAR(RankHitProbability(c, 8), 0.25, 1e-15);
  EXPECT_EQ(RankHitProbability(c, 1), 0.0);
}

TEST(AllToAll, V4FlashEightRanksPerTokenAndLayer) {
  const checkpoint::ModelConfig c = Preset("v4-flash");
  ASSERT_EQ(c.hidden_size, 4096);
  ASSERT_EQ(c.num_experts_per_tok, 6);
  const AllToAll a = ComputeAllToAll(Inputs(c, 8), 10);
  double miss = 1;
  for (int i = 0; i < 6; ++i) miss *= (224.0 - i) / (256.0 - i);
  EXPECT_NEAR(a.dest_ranks_per_token, 7 * (1 - miss), 1e-12);
  EXPECT_DOUBLE_EQ(a.remote_experts_per_token, 6 * 7 / 8.0);
  EXPECT_NEAR(a.dispatch_bytes_per_token_layer, 7 * (1 - miss) * 8192 + 5.25 * 12, 1e-9);
  EXPECT_DOUBLE_EQ(a.combine_bytes_per_token_layer, 5.25 * 8192);
  EXPECT_EQ(a.moe_layers, c.num_hidden_layers);
  EXPECT_EQ(a.collectives_per_step, 3 * c.num_hidden_layers);
  EXPECT_DOUBLE_EQ(a.tokens_per_gpu, 10);
  EXPECT_NEAR(a.bytes_per_step,
              10.0 * 43 * (a.dispatch_bytes_per_token_layer + a.combine_bytes_per_token_layer),
              1e-6);
  EXPECT_EQ(a.step_seconds, 0);  // no link bandwidth given
}

TEST(AllToAll, Fp8DispatchRowsCarryAScalePer128) {
  const checkpoint::ModelConfig c = Preset("v4-flash");
  AllToAllInputs in = Inputs(c, 8);
  const AllToAll bf16 = ComputeAllToAll(in, 1);
  in.dispatch = DispatchDtype::kFp8;
  const AllToAll fp8 = ComputeAllToAll(in, 1);
  EXPECT_NEAR(bf16.dispatch_bytes_per_token_layer - fp8.dispatch_bytes_per_token_layer,
              bf16.dest_ranks_per_token * (8192 - (4096 + 128)), 1e-9);
  EXPECT_EQ(bf16.combine_bytes_per_token_layer, fp8.combine_bytes_per_token_layer);
}

TEST(AllToAll, NoExchangeOnOneRankAndNoneForDenseLayers) {
  const checkpoint::ModelConfig v32 = Preset("v3.2");
  const AllToAll one = ComputeAllToAll(Inputs(v32, 1), 64);
  EXPECT_EQ(one.bytes_per_step, 0);
  EXPECT_EQ(one.collectives_per_step, 0);
  const AllToAll a = ComputeAllToAll(Inputs(v32, 8), 1);
  EXPECT_EQ(a.moe_layers, v32.num_hidden_layers - v32.first_k_dense_replace);
}

TEST(AllToAll, TrafficBeyondTheDomainGoesOverTheNic) {
  const checkpoint::ModelConfig c = Preset("v4-pro");
  AllToAllInputs in = Inputs(c, 16);
  in.domain_gpus = 8;
  in.link_bytes_per_s = 450e9;
  in.nic_bytes_per_s = 50e9;
  const AllToAll a = ComputeAllToAll(in, 32);
  EXPECT_DOUBLE_EQ(a.offdomain_fraction, 8.0 / 15.0);
  EXPECT_DOUBLE_EQ(a.step_seconds, std::max(a.bytes_per_step * (7.0 / 15.0) / 450e9,
                                            a.bytes_per_step * (8.0 / 15.0) / 50e9));
  in.domain_gpus = 72;  // an NVL72 rack holds the whole group
  in.nic_bytes_per_s = 0;
  const AllToAll rack = ComputeAllToAll(in, 32);
  EXPECT_EQ(rack.offdomain_fraction, 0);
  EXPECT_DOUBLE_EQ(rack.step_seconds, rack.bytes_per_step / 450e9);
}

TEST(AllToAll, PlanReportsItAtEachLengthsDecodeBatch) {
  PlanRequest r;
  r.models = {"v4-flash"};
  r.hardware = {"gb300"};
  r.layout = "dep8";
  r.contexts = {"8K", "1M"};
  std::vector<PlanOptions> o = ResolvePlanRequest(r, nullptr).value();
  const CapacityPlan p = PlanCapacity(o.front()).value();
  ASSERT_EQ(p.lengths.size(), 2u);
  for (const LengthPlan& l : p.lengths) {
    EXPECT_DOUBLE_EQ(l.a2a.tokens_per_gpu, static_cast<double>(l.n.per_rank));
    EXPECT_DOUBLE_EQ(l.a2a.step_seconds, l.a2a.bytes_per_step / 900e9);  // NVLink 5, one rack
  }
  EXPECT_GT(p.lengths[0].a2a.bytes_per_step, p.lengths[1].a2a.bytes_per_step);
}

TEST(AllToAll, FlagsAreChecked) {
  PlanRequest r;
  r.models = {"v4-flash"};
  r.a2a_dispatch = "fp16";
  Result<std::vector<PlanOptions>> bad = ResolvePlanRequest(r, nullptr);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("--a2a-dispatch 'fp16'"), std::string::npos);
  r.a2a_dispatch = "fp8";
  r.link_gbs = -1;
  bad = ResolvePlanRequest(r, nullptr);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("--link-bw"), std::string::npos);
  r.link_gbs = 100;
  r.nic_gbs = 25;
  Result<std::vector<PlanOptions>> ok = ResolvePlanRequest(r, nullptr);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->front().a2a_dispatch, DispatchDtype::kFp8);
  EXPECT_EQ(ok->front().gpu.link_bytes_per_s, 100e9);
  EXPECT_EQ(ok->front().gpu.nic_bytes_per_s, 25e9);
}

}  // namespace
}  // namespace dsv4::plan
