// Tiny checkpoints: generate -> write (sharded, official layout) -> load -> compare.
#include "testing/weight_generator.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <set>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/bf16.h"
#include "core/fp8.h"
#include "core/quant.h"
#include "checkpoint/checkpoint_layout.h"
#include "checkpoint/presets.h"

namespace dsv4::fixtures {
using checkpoint::Arch;
using checkpoint::Checkpoint;
using checkpoint::DraftFamily;
using checkpoint::LayerKind;
using checkpoint::ModelConfig;
using checkpoint::OwnedTensor;
using checkpoint::TensorStore;
using checkpoint::TensorView;
using checkpoint::WeightFormat;
using checkpoint::WeightKind;
using checkpoint::WeightSpec;
using checkpoint::ArchName;
using checkpoint::ListWeights;
using checkpoint::OpenCheckpoint;
using checkpoint::PresetConfig;
using checkpoint::TinyV32Config;
using checkpoint::TinyV4Config;
using checkpoint::VerifyTensors;
using checkpoint::WithDrafter;

namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

fs::path FreshDir(const std::string& name) {
  fs::path d = fs::path(DSV4_TEST_TMPDIR) / name;
  fs::remove_all(d);
  return d;
}

ModelConfig Tiny(Arch arch, WeightFormat w) {
  ModelConfig c = arch == Arch::kV4 ? TinyV4Config() : TinyV32Config();
  c.weight_format = w;
  return c;
}

template <typename T>
std::vector<T> Values(const TensorView& v) {
  std::vector<T> out(v.bytes.size() / sizeof(T));
  std::memcpy(out.data(), v.bytes.data(), v.bytes.size());
  return out;
}

class RoundTrip : public ::testing::TestWithParam<std::tuple<Arch, WeightFormat>> {};

TEST_P(RoundTrip, EveryTensorSurvivesWriteAndLoad) {
  const auto [arch, fmt] = GetParam();
  const ModelConfig c = Tiny(arch, fmt);
  std::vector<OwnedTensor> tensors = GenerateWeights(c, 7).value();
  const fs::path dir = FreshDir(std::string(ArchName(arch)) +
                                (fmt == WeightFormat::kFp8 ? "_fp8" : "_bf16"));
  ASSERT_TRUE(WriteCheckpoint(dir, c, tensors, 3).ok());
  EXPECT_TRUE(fs::exists(dir / "model.safetensors.index.json"));
  EXPECT_TRUE(fs::exists(dir / "model-00003-of-00003.safetensors"));
  Result<Checkpoint> ck = OpenCheckpoint(dir);
  ASSERT_TRUE(ck.ok()) << ck.status().ToString();
  EXPECT_EQ(ck->drafter, DraftFamily::kMtp);
  EXPECT_TRUE(ck->unexpected.empty());
  EXPECT_EQ(ck->config.weight_format, fmt);
  EXPECT_EQ(ck->config.arch, arch);
  EXPECT_EQ(ck->weights->names().size(), tensors.size());
  for (const OwnedTensor& t : tensors) {
    TensorView v = ck->weights->Get(t.name, t.dtype, t.shape).value();
    ASSERT_EQ(v.bytes.size(), t.data.size()) << t.name;
    EXPECT_EQ(std::memcmp(v.bytes.data(), t.data.data(), t.data.size()), 0) << t.name;
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, RoundTrip,
                         ::testing::Combine(::testing::Values(Arch::kV4, Arch::kV32),
                                            ::testing::Values(WeightFormat::kFp8,
                                                              WeightFormat::kBf16)));

// The BF16 variant stores exactly the dequantised FP8/FP4 values: the same model.
TEST(WeightGenerator, Bf16VariantIsTheExactDequantisation) {
  for (Arch arch : {Arch::kV4, Arch::kV32}) {
    const ModelConfig c8 = Tiny(arch, WeightFormat::kFp8);
    const ModelConfig c16 = Tiny(arch, WeightFormat::kBf16);
    auto s8 = TensorStore::Create("fp8", GenerateWeights(c8, 3).value()).value();
    auto s16 = TensorStore::Create("bf16", GenerateWeights(c16, 3).value()).value();
    int64_t linears = 0;
    for (const WeightSpec& w : ListWeights(c8)) {
      if (w.kind == WeightKind::kPlain) {
        TensorView a = s8->Get(w.name).value(), b = s16->Get(w.name).value();
        ASSERT_EQ(a.bytes.size(), b.bytes.size());
        EXPECT_EQ(std::memcmp(a.bytes.data(), b.bytes.data(), a.bytes.size()), 0) << w.name;
        continue;
      }
      ++linears;
      const int64_t rows = w.shape[0], cols = w.shape[1];
      std::vector<float> deq(static_cast<size_t>(rows * cols));
      const std::vector<uint8_t> q = Values<uint8_t>(s8->Get(w.name + ".weight").value());
      if (arch == Arch::kV4 && w.kind == WeightKind::kExpertLinear) {
        DequantizeFp4Row32(q, Values<uint8_t>(s8->Get(w.name + ".scale").value()), rows, cols, deq);
      } else if (arch == Arch::kV4) {
        DequantizeFp8Block128(q, Values<uint8_t>(s8->Get(w.name + ".scale").value()), rows, cols,
                              deq);
      } else {
        std::vector<float> inv = Values<float>(s8->Get(w.name + ".weight_scale_inv").value());
        std::vector<uint8_t> e8(inv.size());
        for (size_t i = 0; i < inv.size(); ++i) e8[i] = E8M0FromPow2(inv[i]);
        DequantizeFp8Block128(q, e8, rows, cols, deq);
      }
      const std::vector<BF16> bf = Values<BF16>(s16->Get(w.name + ".weight").value());
      ASSERT_EQ(bf.size(), deq.size());
      for (size_t i = 0; i < deq.size(); ++i) {
        ASSERT_EQ(Bf16ToF32(bf[i]), deq[i]) << w.name << " element " << i;
      }
    }
    EXPECT_GT(linears, 20);
  }
}

// BF16 overrides of single linears (spec §14.1b: V3.2 eh_proj, indexer wk): the overridden
// linears hold the BF16 variant's values (the exact dequantisation, checked above), every
// other tensor is the FP8 variant's, byte for byte.
TEST(WeightGenerator, Bf16OverridesHoldTheBf16VariantsValues) {
  const ModelConfig c8 = Tiny(Arch::kV32, WeightFormat::kFp8);
  const ModelConfig c16 = Tiny(Arch::kV32, WeightFormat::kBf16);
  const std::vector<OwnedTensor> mixed =
      GenerateWeights(c8, {.seed = 3, .bf16_linears = {".eh_proj", ".indexer.wk"}}).value();
  auto s8 = TensorStore::Create("fp8", GenerateWeights(c8, 3).value()).value();
  auto s16 = TensorStore::Create("bf16", GenerateWeights(c16, 3).value()).value();
  int64_t overridden = 0;
  for (const OwnedTensor& t : mixed) {
    const bool bf16 = t.name.ends_with(".eh_proj.weight") || t.name.ends_with(".indexer.wk.weight");
    const TensorView want = (bf16 ? *s16 : *s8).Get(t.name).value();
    EXPECT_EQ(t.dtype, want.dtype) << t.name;
    ASSERT_EQ(t.data.size(), want.bytes.size()) << t.name;
    EXPECT_EQ(std::memcmp(t.data.data(), want.bytes.data(), t.data.size()), 0) << t.name;
    overridden += bf16;
  }
  EXPECT_EQ(overridden, c8.num_hidden_layers + 2);  // wk of every layer and the MTP layer, eh_proj
  EXPECT_EQ(mixed.size(), s8->names().size() - overridden);  // no weight_scale_inv for those
  checkpoint::DraftFamily drafter = checkpoint::DraftFamily::kNone;
  std::vector<std::string> unexpected;
  auto store = TensorStore::Create("mixed", std::vector<OwnedTensor>(mixed)).value();
  EXPECT_TRUE(VerifyTensors(c8, *store, &drafter, &unexpected).ok());
  EXPECT_EQ(drafter, checkpoint::DraftFamily::kMtp);
  EXPECT_TRUE(unexpected.empty());
  // V4 dense linears are decided per tensor too (FP8 + E8M0 or BF16).
  const ModelConfig v4 = TinyV4Config();
  auto v4_mixed = GenerateWeights(v4, {.bf16_linears = {".wq_a"}});
  ASSERT_TRUE(v4_mixed.ok()) << v4_mixed.status().message();
  auto v4_store = TensorStore::Create("v4", std::move(*v4_mixed)).value();
  EXPECT_TRUE(VerifyTensors(v4, *v4_store, &drafter, &unexpected).ok());
}

TEST(WeightGenerator, DeterministicPerSeedAndWellFormed) {
  const ModelConfig c = TinyV4Config();
  std::vector<OwnedTensor> a = GenerateWeights(c, 11).value();
  std::vector<OwnedTensor> b = GenerateWeights(c, 11).value();
  std::vector<OwnedTensor> d = GenerateWeights(c, 12).value();
  ASSERT_EQ(a.size(), b.size());
  int64_t differ = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].data, b[i].data) << a[i].name;
    differ += a[i].data != d[i].data;
  }
  EXPECT_GT(differ, static_cast<int64_t>(a.size()) * 9 / 10);
  for (const OwnedTensor& t : a) {
    if (t.name.ends_with("tid2eid")) {
      std::vector<int64_t> ids(t.data.size() / 8);
      std::memcpy(ids.data(), t.data.data(), t.data.size());
      for (int64_t row = 0; row < t.shape[0]; ++row) {
        std::set<int64_t> s(ids.begin() + row * t.shape[1], ids.begin() + (row + 1) * t.shape[1]);
        EXPECT_EQ(static_cast<int64_t>(s.size()), t.shape[1]);
        for (int64_t e : s) EXPECT_TRUE(e >= 0 && e < c.n_routed_experts);
      }
    }
    if (t.dtype == DType::kF8E8M0) {  // no NaN scale codes
      for (std::byte x : t.data) EXPECT_NE(static_cast<uint8_t>(x), 0xFF) << t.name;
    }
  }
}

TEST(WeightGenerator, RefusesRealSizeConfigs) {
  Status s = GenerateWeights(PresetConfig("v4-flash").value(), 1).status();
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(), HasSubstr("bytes of weights"));
}

TEST(WeightGenerator, BuiltinDefaultModelIsTheTinyV4) {
  Result<Checkpoint> m = BuiltinDefaultModel();
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->name, "dsv4-tiny");
  EXPECT_EQ(m->config.arch, Arch::kV4);
  EXPECT_EQ(m->drafter, DraftFamily::kMtp);
  // Every layer type, hash and non-hash MoE are present.
  EXPECT_EQ(m->config.CountLayers(LayerKind::kSwa), 1);
  EXPECT_EQ(m->config.CountLayers(LayerKind::kCsa), 2);
  EXPECT_EQ(m->config.CountLayers(LayerKind::kHca), 2);
  EXPECT_TRUE(m->weights->Has("layers.1.ffn.gate.tid2eid"));
  EXPECT_TRUE(m->weights->Has("layers.2.ffn.gate.bias"));
}

TEST(VerifyTensors, ReportsMissingWrongAndPartialMtp) {
  const ModelConfig c = TinyV4Config();
  std::vector<OwnedTensor> all = GenerateWeights(c, 5).value();
  auto verify = [&](std::vector<OwnedTensor> ts) {
    auto store = TensorStore::Create("store", std::move(ts)).value();
    DraftFamily mtp = DraftFamily::kMtp;
    std::vector<std::string> unexpected;
    Status s = VerifyTensors(c, *store, &mtp, &unexpected);
    return std::tuple{s, mtp, unexpected};
  };
  {  // missing main tensor
    std::vector<OwnedTensor> ts = all;
    std::erase_if(ts, [](const OwnedTensor& t) { return t.name == "layers.3.attn.wkv.scale"; });
    auto [s, mtp, un] = verify(ts);
    EXPECT_EQ(s.code(), StatusCode::kNotFound);
    EXPECT_THAT(s.message(), HasSubstr("layers.3.attn.wkv.scale"));
    EXPECT_THAT(s.message(), HasSubstr("F8_E8M0"));
  }
  {  // wrong shape
    std::vector<OwnedTensor> ts = all;
    for (OwnedTensor& t : ts) {
      if (t.name == "norm.weight") {
        t.shape = {128, 2};
      }
    }
    auto [s, mtp, un] = verify(ts);
    EXPECT_THAT(s.message(), HasSubstr("norm.weight"));
    EXPECT_THAT(s.message(), HasSubstr("[128, 2]"));
    EXPECT_THAT(s.message(), HasSubstr("[256]"));
  }
  {  // no MTP at all: fine; partial MTP: error; extra tensor: reported
    std::vector<OwnedTensor> ts = all;
    std::erase_if(ts, [](const OwnedTensor& t) { return t.name.starts_with("mtp."); });
    ts.push_back({"extra.bias", DType::kF32, {1}, std::vector<std::byte>(4)});
    auto [s, mtp, un] = verify(ts);
    EXPECT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(mtp, DraftFamily::kNone);
    EXPECT_EQ(un, std::vector<std::string>{"extra.bias"});
    ts = all;
    std::erase_if(ts, [](const OwnedTensor& t) { return t.name == "mtp.0.e_proj.weight"; });
    auto [s2, mtp2, un2] = verify(ts);
    EXPECT_THAT(s2.message(), HasSubstr("MTP module is incomplete"));
  }
}

// The three release layouts of one seed share every main-model tensor byte for byte: only the
// drafter's tensors differ (each weight draws from its own (seed, name) stream).
TEST(WeightGenerator, DraftLayoutsShareTheMainModel) {
  std::map<std::string, std::vector<std::byte>> april;
  std::vector<OwnedTensor> april_tensors =
      GenerateWeights(WithDrafter(TinyV4Config(), DraftFamily::kMtp), 9).value();
  for (OwnedTensor& t : april_tensors) april.emplace(t.name, std::move(t.data));
  for (DraftFamily f : {DraftFamily::kDspark, DraftFamily::kNone}) {
    const ModelConfig c = WithDrafter(TinyV4Config(), f);
    int64_t main = 0, draft = 0;
    const std::vector<OwnedTensor> tensors = GenerateWeights(c, 9).value();
    for (const OwnedTensor& t : tensors) {
      if (t.name.starts_with("mtp.")) {
        ++draft;
        continue;
      }
      ++main;
      ASSERT_TRUE(april.count(t.name)) << t.name;
      EXPECT_EQ(april.at(t.name), t.data) << t.name;
    }
    const auto is_main = [](const auto& e) { return !e.first.starts_with("mtp."); };
    EXPECT_EQ(main, static_cast<int64_t>(std::count_if(april.begin(), april.end(), is_main)));
    EXPECT_EQ(draft > 0, f == DraftFamily::kDspark);
  }
}

TEST(VerifyTensors, DsparkBlocksAllOrNothing) {
  const ModelConfig c = WithDrafter(TinyV4Config(), DraftFamily::kDspark);
  std::vector<OwnedTensor> all = GenerateWeights(c, 5).value();
  auto verify = [](const ModelConfig& cfg, std::vector<OwnedTensor> ts) {
    auto store = TensorStore::Create("store", std::move(ts)).value();
    DraftFamily f = DraftFamily::kMtp;
    std::vector<std::string> unexpected;
    Status s = VerifyTensors(cfg, *store, &f, &unexpected);
    return std::tuple{s, f, unexpected};
  };
  {
    auto [s, f, un] = verify(c, all);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(f, DraftFamily::kDspark);
    EXPECT_TRUE(un.empty());
  }
  {  // main model only
    std::vector<OwnedTensor> ts = all;
    std::erase_if(ts, [](const OwnedTensor& t) { return t.name.starts_with("mtp."); });
    auto [s, f, un] = verify(c, ts);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(f, DraftFamily::kNone);
  }
  {  // a whole block missing
    std::vector<OwnedTensor> ts = all;
    std::erase_if(ts, [](const OwnedTensor& t) { return t.name.starts_with("mtp.1."); });
    auto [s, f, un] = verify(c, ts);
    EXPECT_EQ(s.code(), StatusCode::kNotFound);
    EXPECT_THAT(s.message(), HasSubstr("DSpark draft blocks are incomplete"));
    EXPECT_THAT(s.message(), HasSubstr("'mtp.1.attn_norm.weight'"));
  }
  {  // April tensors under a DSpark config.json, and the other way round
    const ModelConfig april = WithDrafter(TinyV4Config(), DraftFamily::kMtp);
    auto [s, f, un] = verify(c, GenerateWeights(april, 5).value());
    EXPECT_THAT(s.message(), HasSubstr("'mtp.0.main_proj.weight'"));
    EXPECT_THAT(s.message(), HasSubstr("holds the April MTP module"));
    auto [s2, f2, un2] = verify(april, all);
    EXPECT_THAT(s2.message(), HasSubstr("MTP module is incomplete"));
    EXPECT_THAT(s2.message(), HasSubstr("holds DSpark draft blocks"));
    EXPECT_THAT(s2.message(), HasSubstr("no dspark_target_layer_ids"));
  }
}

}  // namespace
}  // namespace dsv4::fixtures
