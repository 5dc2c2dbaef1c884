// The checkpoint inventory against spec §12.1 / §14.1b and the published parameter counts.
#include "checkpoint/checkpoint_layout.h"

#include <map>

#include <gtest/gtest.h>

#include "checkpoint/presets.h"

namespace dsv4::checkpoint {
namespace {

std::map<std::string, TensorSpec> ByName(const ModelConfig& c) {
  std::map<std::string, TensorSpec> m;
  for (TensorSpec& t : ListTensors(c)) {
    EXPECT_TRUE(m.emplace(t.name, t).second) << "duplicate " << t.name;
  }
  return m;
}

int64_t Params(const ModelConfig& c, bool mtp) {
  int64_t n = 0;
  for (const WeightSpec& w : ListWeights(c, mtp)) n += w.num_params();
  return n;
}

void ExpectTensor(const std::map<std::string, TensorSpec>& m, const std::string& name, DType dtype,
                  std::vector<int64_t> shape) {
  auto it = m.find(name);
  ASSERT_NE(it, m.end()) << name;
  EXPECT_EQ(it->second.dtype, dtype) << name;
  EXPECT_EQ(it->second.shape, shape) << name;
}

TEST(CheckpointLayout, ParameterCountsMatchPublishedTotals) {
  // spec §1.1 / NANO: logical parameters incl. MTP.
  EXPECT_EQ(Params(PresetConfig("v4-flash").value(), true), 290942289362);
  EXPECT_EQ(Params(PresetConfig("v4-pro").value(), true), 1598837347742);
  int64_t routed = 0;
  for (const WeightSpec& w : ListWeights(PresetConfig("v4-pro").value())) {
    if (w.group == ParamGroup::kRoutedExperts) routed += w.num_params();
  }
  EXPECT_EQ(routed, 1572763336704);  // capacity planner issue: routed incl. MTP
}

TEST(CheckpointLayout, FlashShapesAndDtypes) {
  const auto m = ByName(PresetConfig("v4-flash").value());
  ExpectTensor(m, "embed.weight", DType::kBF16, {129280, 4096});
  ExpectTensor(m, "layers.0.hc_attn_fn", DType::kF32, {24, 16384});
  ExpectTensor(m, "layers.0.attn.wq_a.scale", DType::kF8E8M0, {8, 32});
  ExpectTensor(m, "layers.0.attn.wq_b.weight", DType::kF8E4M3, {32768, 1024});
  ExpectTensor(m, "layers.0.attn.wq_b.scale", DType::kF8E8M0, {256, 8});
  ExpectTensor(m, "layers.0.attn.wo_a.weight", DType::kF8E4M3, {8192, 4096});
  ExpectTensor(m, "layers.0.attn.wo_a.scale", DType::kF8E8M0, {64, 32});
  ExpectTensor(m, "layers.0.attn.wo_b.scale", DType::kF8E8M0, {32, 64});
  ExpectTensor(m, "layers.2.attn.compressor.wkv.weight", DType::kBF16, {1024, 4096});
  ExpectTensor(m, "layers.2.attn.compressor.ape", DType::kF32, {4, 1024});
  ExpectTensor(m, "layers.3.attn.compressor.ape", DType::kF32, {128, 512});
  ExpectTensor(m, "layers.2.attn.indexer.wq_b.scale", DType::kF8E8M0, {64, 8});
  ExpectTensor(m, "layers.2.attn.indexer.compressor.ape", DType::kF32, {4, 256});
  ExpectTensor(m, "layers.2.ffn.gate.tid2eid", DType::kI64, {129280, 6});
  ExpectTensor(m, "layers.3.ffn.gate.bias", DType::kF32, {256});
  ExpectTensor(m, "layers.3.ffn.experts.255.w1.weight", DType::kI8, {2048, 2048});
  ExpectTensor(m, "layers.3.ffn.experts.255.w1.scale", DType::kF8E8M0, {2048, 128});
  ExpectTensor(m, "layers.3.ffn.experts.0.w2.weight", DType::kI8, {4096, 1024});
  ExpectTensor(m, "layers.3.ffn.experts.0.w2.scale", DType::kF8E8M0, {4096, 64});
  ExpectTensor(m, "layers.3.ffn.shared_experts.w2.scale", DType::kF8E8M0, {32, 16});
  ExpectTensor(m, "mtp.0.e_proj.scale", DType::kF8E8M0, {32, 32});
  ExpectTensor(m, "mtp.0.ffn.gate.bias", DType::kF32, {256});
  ExpectTensor(m, "hc_head_fn", DType::kF32, {4, 16384});
  // SWA-only layers have no compressor; HCA layers no indexer; MTP never hash-routed.
  EXPECT_EQ(m.count("layers.0.attn.compressor.ape"), 0u);
  EXPECT_EQ(m.count("layers.3.attn.indexer.wq_b.weight"), 0u);
  EXPECT_EQ(m.count("mtp.0.ffn.gate.tid2eid"), 0u);
  EXPECT_EQ(m.count("mtp.0.attn.compressor.ape"), 0u);
}

// Spec §11.4: three full SWA-only blocks without compressor or indexer, main_proj/main_norm
// on the first, the output heads on the last; no April MTP tensors.
TEST(CheckpointLayout, Flash0731DsparkBlocks) {
  const ModelConfig c = PresetConfig("v4-flash-0731").value();
  const auto m = ByName(c);
  ExpectTensor(m, "mtp.0.main_proj.weight", DType::kF8E4M3, {4096, 3 * 4096});
  ExpectTensor(m, "mtp.0.main_proj.scale", DType::kF8E8M0, {32, 96});
  ExpectTensor(m, "mtp.0.main_norm.weight", DType::kBF16, {4096});
  ExpectTensor(m, "mtp.2.norm.weight", DType::kBF16, {4096});
  ExpectTensor(m, "mtp.2.hc_head_fn", DType::kF32, {4, 16384});
  ExpectTensor(m, "mtp.2.hc_head_base", DType::kF32, {4});
  ExpectTensor(m, "mtp.2.hc_head_scale", DType::kF32, {1});
  ExpectTensor(m, "mtp.2.markov_head.markov_w1.weight", DType::kBF16, {129280, 256});
  ExpectTensor(m, "mtp.2.markov_head.markov_w2.weight", DType::kBF16, {129280, 256});
  ExpectTensor(m, "mtp.2.confidence_head.proj.weight", DType::kBF16, {1, 4096 + 256});
  for (const std::string b : {"mtp.0.", "mtp.1.", "mtp.2."}) {
    ExpectTensor(m, b + "attn.wq_a.scale", DType::kF8E8M0, {8, 32});
    ExpectTensor(m, b + "attn.wkv.weight", DType::kF8E4M3, {512, 4096});
    ExpectTensor(m, b + "attn.attn_sink", DType::kF32, {64});
    ExpectTensor(m, b + "hc_ffn_fn", DType::kF32, {24, 16384});
    ExpectTensor(m, b + "ffn.gate.bias", DType::kF32, {256});
    ExpectTensor(m, b + "ffn.experts.255.w2.weight", DType::kI8, {4096, 1024});
    ExpectTensor(m, b + "ffn.shared_experts.w1.scale", DType::kF8E8M0, {16, 32});
    for (const char* absent : {"attn.compressor.ape", "attn.indexer.wq_b.weight",
                               "ffn.gate.tid2eid", "e_proj.weight", "h_proj.weight",
                               "enorm.weight", "hnorm.weight"}) {
      EXPECT_EQ(m.count(b + absent), 0u) << b << absent;
    }
  }
  for (const char* absent : {"mtp.1.main_proj.weight", "mtp.0.norm.weight", "mtp.1.hc_head_fn",
                             "mtp.0.markov_head.markov_w1.weight", "mtp.3.attn_norm.weight"}) {
    EXPECT_EQ(m.count(absent), 0u) << absent;
  }
  // The main model is the April one, tensor for tensor.
  const ModelConfig april = PresetConfig("v4-flash").value();
  const std::vector<TensorSpec> a = ListTensors(april, /*include_mtp=*/false);
  const std::vector<TensorSpec> b = ListTensors(c, /*include_mtp=*/false);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].name, b[i].name);
    EXPECT_EQ(a[i].shape, b[i].shape) << a[i].name;
  }
  EXPECT_EQ(Params(c, false), Params(april, false));
  // Three blocks of the April MTP block's size (less e_proj/h_proj/enorm/hnorm/norm), plus
  // main_proj, main_norm, the last block's norm, and the heads.
  int64_t draft = 0, draft_head = 0;
  for (const WeightSpec& w : ListWeights(c)) {
    if (!w.mtp) continue;
    draft += w.num_params();
    if (w.group == ParamGroup::kDraftHead) draft_head += w.num_params();
  }
  EXPECT_EQ(draft_head, 2 * 129280 * 256 + 4096 + 256);
  const int64_t april_mtp = Params(april, true) - Params(april, false);
  const int64_t mtp_extras = 2 * 4096 * 4096 + 3 * 4096;  // e_proj, h_proj, enorm, hnorm, norm
  const int64_t hc_head = 4 * 16384 + 4 + 1;
  const int64_t block = april_mtp - mtp_extras - hc_head;
  EXPECT_EQ(draft, 3 * block + 4096 * 3 * 4096 + 4096 + 4096 + hc_head + draft_head);
}

TEST(CheckpointLayout, NoDrafterMeansMainModelOnly) {
  const ModelConfig none = WithDrafter(PresetConfig("v4-flash").value(), DraftFamily::kNone);
  for (const TensorSpec& t : ListTensors(none)) EXPECT_FALSE(t.name.starts_with("mtp.")) << t.name;
  EXPECT_EQ(Params(none, true), 284332240471);  // spec §1.1: 284.33B without MTP
}

TEST(CheckpointLayout, ProShapes) {
  const auto m = ByName(PresetConfig("v4-pro").value());
  ExpectTensor(m, "layers.0.attn.compressor.ape", DType::kF32, {128, 512});  // layers 0-1 HCA
  ExpectTensor(m, "layers.0.attn.wq_a.scale", DType::kF8E8M0, {12, 56});
  ExpectTensor(m, "layers.0.attn.wo_a.weight", DType::kF8E4M3, {16384, 4096});
  ExpectTensor(m, "layers.5.ffn.experts.0.w1.weight", DType::kI8, {3072, 3584});
  ExpectTensor(m, "layers.5.ffn.experts.0.w1.scale", DType::kF8E8M0, {3072, 224});
  ExpectTensor(m, "layers.5.ffn.experts.0.w2.scale", DType::kF8E8M0, {7168, 96});
}

TEST(CheckpointLayout, V32NamesAndScales) {
  const auto m = ByName(PresetConfig("v3.2").value());
  ExpectTensor(m, "model.embed_tokens.weight", DType::kBF16, {129280, 7168});
  ExpectTensor(m, "lm_head.weight", DType::kBF16, {129280, 7168});
  ExpectTensor(m, "model.layers.0.self_attn.kv_a_proj_with_mqa.weight", DType::kF8E4M3,
               {576, 7168});
  ExpectTensor(m, "model.layers.0.self_attn.kv_a_proj_with_mqa.weight_scale_inv", DType::kF32,
               {5, 56});
  ExpectTensor(m, "model.layers.0.self_attn.kv_b_proj.weight", DType::kF8E4M3, {32768, 512});
  ExpectTensor(m, "model.layers.0.mlp.gate_proj.weight", DType::kF8E4M3, {18432, 7168});
  ExpectTensor(m, "model.layers.3.mlp.experts.0.down_proj.weight", DType::kF8E4M3, {7168, 2048});
  ExpectTensor(m, "model.layers.3.mlp.gate.e_score_correction_bias", DType::kF32, {256});
  ExpectTensor(m, "model.layers.3.self_attn.indexer.k_norm.bias", DType::kBF16, {128});
  ExpectTensor(m, "model.layers.61.eh_proj.weight", DType::kF8E4M3, {7168, 14336});
  EXPECT_EQ(m.count("model.layers.2.mlp.gate.weight"), 0u);  // dense layer
}

TEST(CheckpointLayout, Bf16VariantHasNoScales) {
  ModelConfig c = TinyV4Config();
  c.weight_format = WeightFormat::kBf16;
  for (const TensorSpec& t : ListTensors(c)) {
    EXPECT_NE(t.dtype, DType::kF8E4M3) << t.name;
    EXPECT_NE(t.dtype, DType::kF8E8M0) << t.name;
    EXPECT_NE(t.dtype, DType::kI8) << t.name;
  }
  const auto m = ByName(c);
  ExpectTensor(m, "layers.2.ffn.experts.0.w1.weight", DType::kBF16, {128, 256});
}

// Which formats a linear may be stored in: the config's first (what ListTensors lists); V3.2
// also the other of FP8 and BF16 (spec §14.1b); V4 dense linears FP8 + E8M0 or BF16, V4
// routed experts MXFP4 (I8 or U8 codes), NVFP4 or BF16 (spec §11.5).
TEST(CheckpointLayout, AcceptedLinearFormats) {
  using F = LinearFormat;
  ModelConfig v32 = TinyV32Config(), v4 = TinyV4Config();
  EXPECT_EQ(AcceptedLinearFormats(v32, WeightKind::kDenseLinear),
            (std::vector<F>{F::kFp8F32, F::kBf16}));
  EXPECT_EQ(AcceptedLinearFormats(v4, WeightKind::kDenseLinear),
            (std::vector<F>{F::kFp8E8M0, F::kBf16}));
  EXPECT_EQ(AcceptedLinearFormats(v4, WeightKind::kExpertLinear),
            (std::vector<F>{F::kFp4E8M0, F::kFp4U8E8M0, F::kNvfp4, F::kBf16}));
  EXPECT_TRUE(AcceptedLinearFormats(v4, WeightKind::kPlain).empty());
  v32.weight_format = v4.weight_format = WeightFormat::kBf16;
  EXPECT_EQ(AcceptedLinearFormats(v32, WeightKind::kDenseLinear),
            (std::vector<F>{F::kBf16, F::kFp8F32}));
  EXPECT_EQ(AcceptedLinearFormats(v4, WeightKind::kExpertLinear),
            (std::vector<F>{F::kBf16, F::kFp4E8M0, F::kFp4U8E8M0, F::kNvfp4}));
  // StoredLinear: the tensors of one format, under the spec's index.
  const WeightSpec eh{"model.layers.61.eh_proj", WeightKind::kDenseLinear, DType::kF8E4M3,
                      {7168, 14336}, ParamGroup::kMtpProjection, true, 61};
  const std::vector<TensorSpec> bf16 = StoredLinear(eh, F::kBf16, 9);
  ASSERT_EQ(bf16.size(), 1u);
  EXPECT_EQ(bf16[0].name, "model.layers.61.eh_proj.weight");
  EXPECT_EQ(bf16[0].dtype, DType::kBF16);
  EXPECT_EQ(bf16[0].shape, (std::vector<int64_t>{7168, 14336}));
  EXPECT_EQ(bf16[0].spec_index, 9);
  const std::vector<TensorSpec> fp8 = StoredLinear(eh, F::kFp8F32, 9);
  ASSERT_EQ(fp8.size(), 2u);
  EXPECT_EQ(fp8[1].name, "model.layers.61.eh_proj.weight_scale_inv");
  EXPECT_EQ(fp8[1].shape, (std::vector<int64_t>{56, 112}));
}

}  // namespace
}  // namespace dsv4::checkpoint
