// Which tensors are routed experts', and the bytes each expert-parallel rank holds.
#include "checkpoint/expert_shard.h"

#include <gtest/gtest.h>

#include "checkpoint/presets.h"

namespace dsv4::checkpoint {
namespace {

TEST(ExpertShard, RoutedExpertOfTensorNames) {
  EXPECT_EQ(RoutedExpertOf("layers.3.ffn.experts.17.w1.weight"), 17);
  EXPECT_EQ(RoutedExpertOf("layers.0.ffn.experts.0.w2.scale"), 0);
  EXPECT_EQ(RoutedExpertOf("mtp.0.ffn.experts.255.w3.weight"), 255);
  EXPECT_EQ(RoutedExpertOf("layers.3.ffn.shared_experts.w1.weight"), std::nullopt);
  EXPECT_EQ(RoutedExpertOf("layers.3.ffn.gate.weight"), std::nullopt);
  EXPECT_EQ(RoutedExpertOf("layers.3.ffn.experts.x.w1"), std::nullopt);
  EXPECT_EQ(RoutedExpertOf("layers.3.ffn.experts.4"), std::nullopt);
  // V3.2's names.
  EXPECT_EQ(RoutedExpertOf("model.layers.3.mlp.experts.200.up_proj.weight_scale_inv"), 200);
  EXPECT_EQ(RoutedExpertOf("model.layers.3.mlp.shared_experts.up_proj.weight"), std::nullopt);
  EXPECT_EQ(RoutedExpertOf("model.layers.3.mlp.gate.weight"), std::nullopt);
}

TEST(ExpertShard, DrafterTensorsOfEitherArchitecture) {
  const ModelConfig v4 = PresetConfig("v4-flash").value();
  EXPECT_TRUE(IsDrafterTensor(v4, "mtp.0.ffn.experts.3.w1.weight"));
  EXPECT_FALSE(IsDrafterTensor(v4, "layers.42.ffn.experts.3.w1.weight"));
  const ModelConfig v32 = PresetConfig("v3.2").value();  // 61 layers, the MTP layer is 61
  EXPECT_TRUE(IsDrafterTensor(v32, "model.layers.61.mlp.experts.3.up_proj.weight"));
  EXPECT_TRUE(IsDrafterTensor(v32, "model.layers.61.eh_proj.weight"));
  EXPECT_FALSE(IsDrafterTensor(v32, "model.layers.60.mlp.experts.3.up_proj.weight"));
  EXPECT_FALSE(IsDrafterTensor(v32, "model.embed_tokens.weight"));
  EXPECT_FALSE(IsDrafterTensor(v32, "lm_head.weight"));
}

TEST(ExpertShard, CountsReplicatedOnceAndExpertsByOwner) {
  const std::vector<StoredTensor> t = {{"embed.weight", 100},
                                       {"layers.0.ffn.experts.0.w1.weight", 10},
                                       {"layers.0.ffn.experts.1.w1.weight", 20},
                                       {"layers.0.ffn.experts.2.w1.weight", 30},
                                       {"layers.0.ffn.shared_experts.w1.weight", 7}};
  const ShardBytes s = CountShardBytes(t, dist::ExpertMap::Contiguous(3, 2).value());
  EXPECT_EQ(s.replicated, 107);
  EXPECT_EQ(s.experts, (std::vector<int64_t>{10, 50}));
  EXPECT_EQ(s.total(1), 157);
}

TEST(ExpertShard, V4FlashSplitsItsExpertsEvenly) {
  const ModelConfig c = PresetConfig("v4-flash").value();
  const ShardBytes s = CountShardBytes(NativeTensors(c, true), dist::ExpertMap::Contiguous(c.n_routed_experts, 8).value());
  for (int r = 1; r < 8; ++r) EXPECT_EQ(s.experts[r], s.experts[0]);
  EXPECT_GT(s.experts[0], s.replicated);  // 256 experts over 8 ranks still outweigh the rest
}

}  // namespace
}  // namespace dsv4::checkpoint
