// V3.2 checkpoints whose linears mix formats per tensor (spec §14.1b): an FP8 checkpoint with a
// BF16 MTP eh_proj (DeepSeek's V3-family releases) and a BF16 indexer wk (forks). They pass the
// inventory check, load into both forwards and give the numbers the formats imply; a linear stored
// in a format neither runs gets an error naming the tensor, the dtype found and the formats
// accepted.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/rng.h"
#include "checkpoint/checkpoint.h"
#include "checkpoint/presets.h"
#include "checkpoint/tensor_store.h"
#include "models/v32/model.h"
#include "models/v32/weights.h"
#include "testing/weight_generator.h"
#include "run_compare.h"

namespace dsv4::v32 {
namespace {

using checkpoint::ModelConfig;
using checkpoint::OwnedTensor;
using checkpoint::TensorStore;
using ::testing::HasSubstr;

constexpr int64_t kNumTokens = 200;  // far more than index_topk = 16
// TinyV32Config has 3 layers: the MTP layer is layer 3; layer 1 has a DSA indexer like all.
const std::string kEhProj = "model.layers.3.eh_proj";
const std::string kWk = "model.layers.1.self_attn.indexer.wk";

std::vector<OwnedTensor> Generate(const ModelConfig& c, std::vector<std::string> bf16_linears) {
  return fixtures::GenerateWeights(
             c, {.seed = fixtures::kDefaultSeed, .bf16_linears = std::move(bf16_linears)})
      .value();
}

std::unique_ptr<TensorStore> Store(std::vector<OwnedTensor> tensors) {
  return TensorStore::Create("mixed", std::move(tensors)).value();
}

std::vector<int32_t> Tokens(int64_t vocab) {
  Rng rng(99);
  std::vector<int32_t> t(static_cast<size_t>(kNumTokens));
  for (int32_t& v : t) v = static_cast<int32_t>(rng.Below(static_cast<uint64_t>(vocab)));
  return t;
}

const OwnedTensor* Find(const std::vector<OwnedTensor>& ts, const std::string& name) {
  for (const OwnedTensor& t : ts) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

TEST(V32MixedFormats, Bf16EhProjAndIndexerWkLoadFromDisk) {
  const ModelConfig c = checkpoint::TinyV32Config();
  ASSERT_EQ(c.weight_format, checkpoint::WeightFormat::kFp8);
  const std::vector<OwnedTensor> tensors = Generate(c, {".eh_proj", ".indexer.wk"});
  for (const std::string& m : {kEhProj, kWk}) {
    const OwnedTensor* w = Find(tensors, m + ".weight");
    ASSERT_NE(w, nullptr) << m;
    EXPECT_EQ(w->dtype, DType::kBF16) << m;
    EXPECT_EQ(Find(tensors, m + ".weight_scale_inv"), nullptr) << m;
  }
  EXPECT_EQ(Find(tensors, "model.layers.1.self_attn.indexer.wq_b.weight")->dtype, DType::kF8E4M3);

  const std::filesystem::path dir = std::filesystem::path(DSV4_TEST_TMPDIR) / "mixed_formats";
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(fixtures::WriteCheckpoint(dir, c, tensors, 2).ok());
  Result<checkpoint::Checkpoint> ck = checkpoint::OpenCheckpoint(dir);
  ASSERT_TRUE(ck.ok()) << ck.status().ToString();
  EXPECT_EQ(ck->drafter, checkpoint::DraftFamily::kMtp);
  EXPECT_TRUE(ck->unexpected.empty());
  EXPECT_EQ(ck->config.weight_format, checkpoint::WeightFormat::kFp8);
  // Each linear runs in the format its tensors have.
  auto w = LoadWeights(ck->config, *ck->weights).value();
  for (const LayerWeights& l : w->layers) {
    EXPECT_EQ(l.attn.indexer.wk.kind, kernels::LinearKind::kBf16) << l.layer;
    EXPECT_EQ(l.attn.indexer.wq_b.kind, kernels::LinearKind::kFp8Block) << l.layer;
  }
  const std::vector<int32_t> tokens = Tokens(c.vocab_size);
  const test::RunResult r = test::FastRun(ck->config, *ck->weights, tokens);
  ASSERT_EQ(r.logits.size(), tokens.size() * c.vocab_size);
  for (float v : r.logits) ASSERT_TRUE(std::isfinite(v));
}

// eh_proj belongs to the MTP layer, which the main model does not run: a BF16 eh_proj leaves the
// main model's logits bit-identical.
TEST(V32MixedFormats, Bf16EhProjLeavesTheMainModelBitIdentical) {
  const ModelConfig c = checkpoint::TinyV32Config();
  const std::vector<int32_t> tokens = Tokens(c.vocab_size);
  auto fp8 = Store(Generate(c, {}));
  auto mixed = Store(Generate(c, {".eh_proj"}));
  const std::vector<float> a = test::FastRun(c, *fp8, tokens).logits;
  const std::vector<float> b = test::FastRun(c, *mixed, tokens).logits;
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
}

// A BF16 wk holds the exact dequantised FP8 weight, but a BF16 linear skips the FP8 quantisation of
// its input (spec §4.6), so the indexer keys differ a little from the FP8 checkpoint's. They only
// pick the DSA top-k: rows stay bit-identical as long as every pick so far agreed (positions 0..15
// keep every token, so they always do), and a swapped boundary token later moves a row only
// slightly. Against the plain reference reading the same mixed checkpoint, the bounds of the
// all-FP8 comparison (model_test.cpp) hold, the discrete routing one aside.
TEST(V32MixedFormats, Bf16IndexerWkOnlyMovesTheTopKPicks) {
  const ModelConfig c = checkpoint::TinyV32Config();
  const int64_t V = c.vocab_size;
  const std::vector<int32_t> tokens = Tokens(V);
  auto fp8 = Store(Generate(c, {}));
  auto mixed = Store(Generate(c, {".indexer.wk"}));
  const test::RunResult a = test::FastRun(c, *fp8, tokens);
  const test::RunResult b = test::FastRun(c, *mixed, tokens);
  int64_t first_flip = kNumTokens;
  for (int64_t t = 0; t < kNumTokens && first_flip == kNumTokens; ++t) {
    for (size_t l = 0; l < a.selected.size(); ++l) {
      const bool routed_alike = a.experts[l].empty() || a.experts[l][t] == b.experts[l][t];
      if (a.selected[l][t] != b.selected[l][t] || !routed_alike) {
        first_flip = t;
      }
    }
  }
  std::printf("fp8 vs bf16 indexer wk: first top-k or routing flip at position %lld\n",
              static_cast<long long>(first_flip));
  EXPECT_GE(first_flip, c.index_topk);
  EXPECT_LT(first_flip, kNumTokens);  // wk really runs without the FP8 input quantisation
  EXPECT_EQ(std::memcmp(a.logits.data(), b.logits.data(), first_flip * V * sizeof(float)), 0);
  const test::Agreement g = test::Compare(a, b, V, "fp8 vs bf16 indexer wk");
  EXPECT_GE(g.mean_overlap, 0.95);
  EXPECT_GE(g.min_all, 0.99);
  EXPECT_GE(g.mean_all, 0.999);

  const test::Agreement r =
      test::Compare(b, test::ReferenceRun(c, *mixed, tokens), V, "fast vs reference, bf16 wk");
  EXPECT_EQ(r.selection_flips[0], 0);  // identical inputs: identical index scores
  EXPECT_GE(r.mean_overlap, 0.95);
  // At most 5% of the 400 (MoE layer, position) pairs: each follows a top-k swap upstream (measured
  // 9; the all-FP8 comparison happens to see 4).
  EXPECT_LE(r.routing_flips, kNumTokens / 10);
  EXPECT_GE(r.agreeing, 20);
  EXPECT_GE(r.min_agreeing, 0.9999);
  EXPECT_GE(r.min_all, 0.99);
  EXPECT_GE(r.mean_all, 0.9995);
}

// A checkpoint whose linear formats are wrong: what the inventory check (every tensor, MTP
// included) and the fast loader (main stack) say.
struct MalformedCase {
  std::string name;
  std::vector<std::string> bf16_linears;                // generated as BF16
  std::function<void(std::vector<OwnedTensor>&)> edit;  // then this edit
  StatusCode code;
  std::vector<std::string> message;  // substrings of the error
  bool main_stack;                   // Model::Create must refuse it too
};

void PrintTo(const MalformedCase& c, std::ostream* os) { *os << c.name; }

// Sets the dtype of tensor `name`, keeping its bytes (I8 and F8_E4M3 have the same size).
std::function<void(std::vector<OwnedTensor>&)> Retype(std::string name, DType dtype) {
  return [=](std::vector<OwnedTensor>& ts) {
    for (OwnedTensor& t : ts) {
      if (t.name == name) t.dtype = dtype;
    }
  };
}

std::function<void(std::vector<OwnedTensor>&)> Drop(std::string name) {
  return [=](std::vector<OwnedTensor>& ts) {
    std::erase_if(ts, [&](const OwnedTensor& t) { return t.name == name; });
  };
}

std::vector<MalformedCase> MalformedCases() {
  const std::string accepts = "accepts F8_E4M3 + F32 'weight_scale_inv' or BF16";
  return {
      {"eh_proj_i8",
       {},
       Retype(kEhProj + ".weight", DType::kI8),
       StatusCode::kInvalidArgument,
       {kEhProj + ".weight", "has dtype I8", accepts},
       false},
      {"wk_i8",
       {},
       Retype(kWk + ".weight", DType::kI8),
       StatusCode::kInvalidArgument,
       {kWk + ".weight", "has dtype I8", accepts},
       true},
      {"bf16_eh_proj_wrong_shape",
       {".eh_proj"},
       [](std::vector<OwnedTensor>& ts) {
         for (OwnedTensor& t : ts) {
           if (t.name != kEhProj + ".weight") continue;
           t.shape = {256, 256};
           t.data.resize(t.data.size() / 2);
         }
       },
       StatusCode::kInvalidArgument,
       {kEhProj + ".weight", "has shape [256, 256], expected [256, 512]"},
       false},
      {"fp8_wk_without_scale",
       {},
       Drop(kWk + ".weight_scale_inv"),
       StatusCode::kNotFound,
       {kWk + ".weight_scale_inv"},
       true},
      {"fp8_eh_proj_with_e8m0_scale",
       {},
       [](std::vector<OwnedTensor>& ts) {
         for (OwnedTensor& t : ts) {
           if (t.name != kEhProj + ".weight_scale_inv") continue;
           t.name = kEhProj + ".scale";  // V4's scale, not V3.2's
           t.dtype = DType::kF8E8M0;
           t.data.resize(t.data.size() / 4);
         }
       },
       StatusCode::kNotFound,
       {kEhProj + ".weight_scale_inv"},
       false},
  };
}

class V32MalformedFormatTest : public ::testing::TestWithParam<MalformedCase> {};

TEST_P(V32MalformedFormatTest, RefusedNamingTheTensor) {
  const MalformedCase& mc = GetParam();
  const ModelConfig c = checkpoint::TinyV32Config();
  std::vector<OwnedTensor> tensors = Generate(c, mc.bf16_linears);
  mc.edit(tensors);
  auto store = Store(std::move(tensors));
  checkpoint::DraftFamily has_mtp = checkpoint::DraftFamily::kNone;
  std::vector<std::string> unexpected;
  const Status s = checkpoint::VerifyTensors(c, *store, &has_mtp, &unexpected);
  EXPECT_EQ(s.code(), mc.code) << s.ToString();
  for (const std::string& m : mc.message) EXPECT_THAT(s.message(), HasSubstr(m));
  if (!mc.main_stack) {
    EXPECT_TRUE(Model::Create(c, *store).ok());  // the MTP layer is not loaded
    return;
  }
  Result<std::unique_ptr<Model>> r = Model::Create(c, *store);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), mc.code) << r.status().ToString();
  for (const std::string& m : mc.message) EXPECT_THAT(r.status().message(), HasSubstr(m));
}

INSTANTIATE_TEST_SUITE_P(V32, V32MalformedFormatTest, ::testing::ValuesIn(MalformedCases()),
                         [](const auto& info) { return info.param.name; });

// A BF16 linear with a leftover scale beside it is read as BF16; the scale is reported as a tensor
// the layout does not know, not an error.
TEST(V32MixedFormats, LeftoverScaleOfABf16LinearIsOnlyUnexpected) {
  const ModelConfig c = checkpoint::TinyV32Config();
  std::vector<OwnedTensor> tensors = Generate(c, {".indexer.wk"});
  OwnedTensor scale = *Find(Generate(c, {}), kWk + ".weight_scale_inv");
  tensors.push_back(scale);
  auto store = Store(std::move(tensors));
  checkpoint::DraftFamily has_mtp = checkpoint::DraftFamily::kNone;
  std::vector<std::string> unexpected;
  ASSERT_TRUE(checkpoint::VerifyTensors(c, *store, &has_mtp, &unexpected).ok());
  EXPECT_EQ(unexpected, std::vector<std::string>{kWk + ".weight_scale_inv"});
  auto w = LoadWeights(c, *store).value();
  EXPECT_EQ(w->layers[1].attn.indexer.wk.kind, kernels::LinearKind::kBf16);
}

}  // namespace
}  // namespace dsv4::v32
