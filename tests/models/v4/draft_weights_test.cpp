// The drafter layouts of the V4 releases (spec §11.3 April MTP, §11.4 DSpark of V4-Flash-0731 /
// V4-Pro-0813, and no drafter): each loads, its draft weights are shape-checked into their
// structs, and the main model's logits are bit-identical across the three layouts of the same
// weights.
#include "models/v4/draft_weights.h"

#include <cstring>
#include <filesystem>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "checkpoint/checkpoint.h"
#include "checkpoint/presets.h"
#include "checkpoint/tensor_store.h"
#include "core/rng.h"
#include "runner/loaded_model.h"
#include "testing/weight_generator.h"

namespace dsv4::v4 {
namespace {

using ::testing::HasSubstr;
using checkpoint::DraftFamily;
using checkpoint::LayerKind;
using checkpoint::ModelConfig;
namespace fs = std::filesystem;

constexpr uint64_t kSeed = 21;

ModelConfig Layout(DraftFamily f) { return checkpoint::WithDrafter(checkpoint::TinyV4Config(), f); }

std::unique_ptr<checkpoint::TensorStore> Store(const ModelConfig& c) {
  return checkpoint::TensorStore::Create("store", fixtures::GenerateWeights(c, kSeed).value())
      .value();
}

// Writes the layout `f` of the seed's weights to disk and opens it as run/serve do.
std::unique_ptr<runner::LoadedModel> OpenLayout(DraftFamily f) {
  const fs::path dir = fs::path(DSV4_TEST_TMPDIR) / "draft_layouts" /
                       std::string(checkpoint::DraftFamilyName(f));
  fs::remove_all(dir);
  const ModelConfig c = Layout(f);
  EXPECT_TRUE(
      fixtures::WriteCheckpoint(dir, c, fixtures::GenerateWeights(c, kSeed).value(), 2).ok());
  Result<std::unique_ptr<runner::LoadedModel>> m = runner::OpenModelFolder(dir.string());
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return m.ok() ? std::move(m).value() : nullptr;
}

void ExpectDraftBlock(const LayerWeights& b, const ModelConfig& c, int64_t layer) {
  EXPECT_EQ(b.layer, layer);
  EXPECT_EQ(b.kind, LayerKind::kSwa);
  EXPECT_EQ(b.compressor.ratio, 0);  // no compressor, no indexer
  EXPECT_EQ(b.indexer.wq_b.out, 0);
  EXPECT_NE(b.gate_bias, nullptr);  // score routing, never hash
  EXPECT_EQ(b.tid2eid, nullptr);
  EXPECT_EQ(static_cast<int64_t>(b.experts.size()), c.n_routed_experts);
  EXPECT_TRUE(b.has_shared);
  EXPECT_EQ(b.wkv.out, c.head_dim);
  EXPECT_EQ(b.wkv.in, c.hidden_size);
}

TEST(V4DraftWeights, DsparkBlocksLoadIntoTheirStructs) {
  const ModelConfig c = Layout(DraftFamily::kDspark);
  auto store = Store(c);
  std::unique_ptr<DraftWeights> dw = LoadDraftWeights(c, *store, DraftFamily::kDspark).value();
  EXPECT_EQ(dw->family, DraftFamily::kDspark);
  EXPECT_FALSE(dw->mtp.has_value());
  ASSERT_TRUE(dw->dspark.has_value());
  const DsparkWeights& d = *dw->dspark;
  const int64_t D = c.hidden_size, L = c.num_hidden_layers, R = c.dspark.markov_rank;
  ASSERT_EQ(d.blocks.size(), 3u);
  for (int64_t b = 0; b < 3; ++b) ExpectDraftBlock(d.blocks[b], c, L + b);
  EXPECT_EQ(d.main_proj.out, D);
  EXPECT_EQ(d.main_proj.in, 3 * D);
  EXPECT_NE(d.main_norm, nullptr);
  EXPECT_NE(d.norm, nullptr);
  EXPECT_EQ(d.hc_head.fn.out, c.hc_mult);
  EXPECT_NE(d.hc_head.scale, nullptr);
  EXPECT_NE(d.markov_w1, nullptr);
  EXPECT_EQ(d.markov_w2.out, c.vocab_size);
  EXPECT_EQ(d.markov_w2.in, R);
  EXPECT_EQ(d.confidence.out, 1);
  EXPECT_EQ(d.confidence.in, D + R);
  // The views are the checkpoint's bytes: markov_w1 row 7 is the stored row 7.
  const checkpoint::TensorView w1 = store->Get("mtp.2.markov_head.markov_w1.weight").value();
  EXPECT_EQ(std::memcmp(d.markov_w1 + 7 * R, w1.bytes.data() + 7 * R * sizeof(BF16),
                        R * sizeof(BF16)),
            0);
}

TEST(V4DraftWeights, AprilMtpAndNone) {
  const ModelConfig c = Layout(DraftFamily::kMtp);
  auto store = Store(c);
  std::unique_ptr<DraftWeights> dw = LoadDraftWeights(c, *store, DraftFamily::kMtp).value();
  ASSERT_TRUE(dw->mtp.has_value());
  EXPECT_FALSE(dw->dspark.has_value());
  ExpectDraftBlock(dw->mtp->block, c, c.num_hidden_layers);
  EXPECT_EQ(dw->mtp->e_proj.out, c.hidden_size);
  EXPECT_EQ(dw->mtp->h_proj.in, c.hidden_size);
  EXPECT_NE(dw->mtp->enorm, nullptr);
  EXPECT_NE(dw->mtp->hnorm, nullptr);
  EXPECT_NE(dw->mtp->norm, nullptr);
  // A checkpoint without draft tensors: nothing to load.
  std::unique_ptr<DraftWeights> none = LoadDraftWeights(c, *store, DraftFamily::kNone).value();
  EXPECT_EQ(none->family, DraftFamily::kNone);
  EXPECT_FALSE(none->mtp.has_value() || none->dspark.has_value());
  // Asking for the family the config does not declare.
  Status s = LoadDraftWeights(c, *store, DraftFamily::kDspark).status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("config.json declares 'April MTP'"));
}

TEST(V4DraftWeights, WrongShapeNamesTheTensor) {
  const ModelConfig c = Layout(DraftFamily::kDspark);
  std::vector<checkpoint::OwnedTensor> ts = fixtures::GenerateWeights(c, kSeed).value();
  for (checkpoint::OwnedTensor& t : ts) {
    if (t.name == "mtp.2.confidence_head.proj.weight") {
      t.shape = {1, c.hidden_size};
      t.data.resize(static_cast<size_t>(c.hidden_size) * sizeof(BF16));
    }
  }
  auto store = checkpoint::TensorStore::Create("store", std::move(ts)).value();
  Status s = LoadDraftWeights(c, *store, DraftFamily::kDspark).status();
  EXPECT_THAT(s.message(), HasSubstr("'mtp.2.confidence_head.proj.weight'"));
  EXPECT_THAT(s.message(), HasSubstr("[1, 512]"));
}

// Acceptance of the 0731 layout: the same main model gives the same logits, bit for bit,
// whichever drafter the checkpoint carries (prefill then decode, through run/serve's loader).
TEST(V4DraftWeights, MainLogitsBitIdenticalAcrossLayouts) {
  Rng rng(5);
  std::vector<int32_t> tokens;
  for (int i = 0; i < 140; ++i) tokens.push_back(static_cast<int32_t>(rng.Below(512)));
  std::vector<std::vector<float>> logits;
  for (DraftFamily f : {DraftFamily::kMtp, DraftFamily::kDspark, DraftFamily::kNone}) {
    std::unique_ptr<runner::LoadedModel> m = OpenLayout(f);
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->drafter, f);
    EXPECT_EQ(m->v4_draft != nullptr, f != DraftFamily::kNone);
    if (f == DraftFamily::kDspark) {
      ASSERT_NE(m->v4_draft, nullptr);
      EXPECT_EQ(m->v4_draft->dspark->blocks.size(), 3u);
    }
    ThreadPool pool(2);
    std::unique_ptr<runner::SequenceState> seq = m->lm->NewSequence();
    std::vector<float> all, part;
    constexpr auto kAll = models::LogitsMode::kAll;
    ASSERT_TRUE(m->lm->Forward(pool, *seq, {tokens.data(), 100}, kAll, &all).ok());
    for (size_t t = 100; t < tokens.size(); ++t) {
      ASSERT_TRUE(m->lm->Forward(pool, *seq, {tokens.data() + t, 1}, kAll, &part).ok());
      all.insert(all.end(), part.begin(), part.end());
    }
    ASSERT_EQ(all.size(), tokens.size() * 512);
    logits.push_back(std::move(all));
  }
  for (size_t i = 1; i < logits.size(); ++i) {
    EXPECT_EQ(std::memcmp(logits[i].data(), logits[0].data(), logits[0].size() * sizeof(float)), 0)
        << "layout " << i;
  }
}

}  // namespace
}  // namespace dsv4::v4
