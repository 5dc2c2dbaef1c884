// NVIDIA NVFP4 routed experts (spec §11.5): the tiny checkpoint written as the lossless
// MXFP4 -> NVFP4 transcode gives the MXFP4 checkpoint's logits bit for bit (the NVFP4 kernels'
// canonical order keeps the MXFP4 lanes and chunks: kernels/cpu/linear_internal.h), in the fast
// forward (prefill then decode, through run/serve's loader) and in the plain reference; the
// draft blocks' experts stay MXFP4 beside NVFP4 main experts (both repacked into the FP4
// tiles on AVX-512 BF16); malformed NVFP4 tensors get errors naming the tensor.
#include <cstring>
#include <filesystem>
#include <functional>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "checkpoint/checkpoint.h"
#include "checkpoint/presets.h"
#include "checkpoint/tensor_store.h"
#include "core/rng.h"
#include "kernels/cpu/fp4_tiles.h"
#include "kernels/cpu/isa.h"
#include "models/v4/weights.h"
#include "runner/loaded_model.h"
#include "testing/weight_generator.h"

namespace dsv4::v4 {
namespace {

using checkpoint::DraftFamily;
using checkpoint::ModelConfig;
using checkpoint::OwnedTensor;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

constexpr uint64_t kSeed = 21;
const std::string kW1 = "layers.1.ffn.experts.2.w1";

ModelConfig Config(bool nvfp4, DraftFamily f = DraftFamily::kDspark) {
  ModelConfig c = checkpoint::WithDrafter(checkpoint::TinyV4Config(), f);
  return nvfp4 ? fixtures::Nvfp4Config(std::move(c)) : c;
}

std::vector<OwnedTensor> Generate(bool nvfp4) {
  return fixtures::GenerateWeights(Config(nvfp4), {.seed = kSeed, .nvfp4_experts = nvfp4}).value();
}

std::unique_ptr<runner::LoadedModel> Open(bool nvfp4) {
  const fs::path dir = fs::path(DSV4_TEST_TMPDIR) / "nvfp4" / (nvfp4 ? "nvfp4" : "mxfp4");
  fs::remove_all(dir);
  EXPECT_TRUE(fixtures::WriteCheckpoint(dir, Config(nvfp4), Generate(nvfp4), 2).ok());
  Result<std::unique_ptr<runner::LoadedModel>> m = runner::OpenModelFolder(dir.string());
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return m.ok() ? std::move(m).value() : nullptr;
}

TEST(V4Nvfp4, LogitsBitIdenticalToMxfp4) {
  Rng rng(5);
  std::vector<int32_t> tokens;
  for (int i = 0; i < 120; ++i) tokens.push_back(static_cast<int32_t>(rng.Below(512)));
  std::vector<std::vector<float>> logits;
  for (bool nvfp4 : {false, true}) {
    std::unique_ptr<runner::LoadedModel> m = Open(nvfp4);
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->drafter, DraftFamily::kDspark);
    ThreadPool pool(2);
    std::unique_ptr<runner::SequenceState> seq = m->lm->NewSequence();
    std::vector<float> all, part;
    constexpr auto kAll = models::LogitsMode::kAll;
    ASSERT_TRUE(m->lm->Forward(pool, *seq, {tokens.data(), 90}, kAll, &all).ok());
    for (size_t t = 90; t < tokens.size(); ++t) {
      ASSERT_TRUE(m->lm->Forward(pool, *seq, {tokens.data() + t, 1}, kAll, &part).ok());
      all.insert(all.end(), part.begin(), part.end());
    }
    logits.push_back(std::move(all));
  }
  ASSERT_EQ(logits[0].size(), logits[1].size());
  EXPECT_EQ(std::memcmp(logits[0].data(), logits[1].data(), logits[0].size() * sizeof(float)), 0);
}

TEST(V4Nvfp4, MainExpertsNvfp4DraftExpertsMxfp4) {
  const ModelConfig c = Config(true);
  auto store = checkpoint::TensorStore::Create("nv", Generate(true)).value();
  EXPECT_EQ(store->Get(kW1 + ".weight").value().dtype, DType::kU8);
  EXPECT_EQ(store->Get("mtp.0.ffn.experts.0.w1.weight").value().dtype, DType::kI8);
  checkpoint::WeightArena arena;
  models::LinearLoader l(*store, arena);
  const std::vector<models::LinearFormat> expert = ExpertFormats(c);
  const kernels::LinearWeight nv =
      l.Linear(kW1, expert, c.moe_intermediate_size, c.hidden_size).value();
  const kernels::LinearWeight mx =
      l.Linear("mtp.0.ffn.experts.0.w1", expert, c.moe_intermediate_size, c.hidden_size).value();
  EXPECT_EQ(nv.kind, kernels::LinearKind::kNvfp4Row16);
  EXPECT_EQ(mx.kind, kernels::LinearKind::kFp4Row32);
  // Both formats' codes are repacked into the FP4 tiles where the AVX-512 BF16 kernels read
  // them (the scales stay in the checkpoint layout).
  const bool tiles = kernels::ActiveIsa() == kernels::Isa::kAvx512Bf16 &&
                     kernels::Fp4TilesSupported(c.moe_intermediate_size, c.hidden_size);
  EXPECT_EQ(nv.fp4_tiles != nullptr, tiles);
  EXPECT_EQ(mx.fp4_tiles != nullptr, tiles);
  EXPECT_EQ(nv.codes == nullptr, tiles);
}

// Malformed NVFP4 tensors: the inventory check refuses them naming the tensor.
struct MalformedCase {
  std::string name;
  std::function<void(std::vector<OwnedTensor>&)> edit;
  bool nvfp4_tensors;  // else the MXFP4 tensors of the same weights
  std::vector<std::string> message;
  // Edits the NVFP4 config's quantisation declaration.
  std::function<void(checkpoint::ModelOptQuant&)> declare = [](checkpoint::ModelOptQuant&) {};
};
void PrintTo(const MalformedCase& c, std::ostream* os) { *os << c.name; }

std::function<void(std::vector<OwnedTensor>&)> Edit(std::string name,
                                                    std::function<void(OwnedTensor&)> f) {
  return [=](std::vector<OwnedTensor>& ts) {
    for (OwnedTensor& t : ts) {
      if (t.name == name) f(t);
    }
  };
}

std::vector<MalformedCase> MalformedCases() {
  return {
      {"no_weight_scale_2",
       [](std::vector<OwnedTensor>& ts) {
         std::erase_if(ts, [](const OwnedTensor& t) { return t.name == kW1 + ".weight_scale_2"; });
       },
       true,
       {"missing tensor '" + kW1 + ".weight_scale_2'"}},
      {"scale_shape_does_not_divide",
       Edit(kW1 + ".weight_scale",
            [](OwnedTensor& t) {
              t.shape[1] = t.shape[1] / 2;  // one scale per 32, not per 16
              t.data.resize(t.data.size() / 2);
            }),
       true,
       {kW1 + ".weight_scale", "expected"}},
      {"nan_e4m3_scale", Edit(kW1 + ".weight_scale", [](OwnedTensor& t) { t.data[3] = std::byte{0x7F}; }),
       true,
       {kW1 + ".weight_scale", "NaN"}},
      {"f16_weight", Edit(kW1 + ".weight", [](OwnedTensor& t) {
         t.dtype = DType::kF16;
         t.shape[1] /= 2;
       }),
       true,
       {kW1 + ".weight", "has dtype F16", "NVFP4"}},
      {"config_says_nvfp4_tensors_mxfp4", [](std::vector<OwnedTensor>&) {}, false,
       {"'layers.0.ffn.experts.0.w1.weight' is I8 (packed FP4)", "declares moe_quant_algo NVFP4",
        "expected U8 (packed FP4) + F8_E4M3 'weight_scale'"}},
      {"ignored_module_stored_nvfp4", [](std::vector<OwnedTensor>&) {}, true,
       {"'" + kW1 + ".weight' is U8 (packed FP4) + F8_E4M3 'weight_scale'",
        "declares ignore pattern 'layers.1.ffn.experts.2.*'", "a format other than NVFP4"},
       [](checkpoint::ModelOptQuant& m) { m.ignore.push_back("layers.1.ffn.experts.2.*"); }},
      {"quantized_layers_says_nvfp4_shared_expert_fp8", [](std::vector<OwnedTensor>&) {}, true,
       {"'layers.0.ffn.shared_experts.w1.weight' is F8_E4M3",
        "declares quantized_layers['layers.0.ffn.shared_experts.w1'] NVFP4"},
       [](checkpoint::ModelOptQuant& m) {
         m.quantized_layers["layers.0.ffn.shared_experts.w1"] = "NVFP4";
       }},
      {"quantized_layers_says_fp8_routed_expert_nvfp4", [](std::vector<OwnedTensor>&) {}, true,
       {"declares quantized_layers['" + kW1 + "'] FP8"},
       [](checkpoint::ModelOptQuant& m) { m.quantized_layers[kW1] = "FP8"; }},
  };
}

class V4Nvfp4Malformed : public ::testing::TestWithParam<MalformedCase> {};

TEST_P(V4Nvfp4Malformed, RefusedNamingTheTensor) {
  const MalformedCase& mc = GetParam();
  std::vector<OwnedTensor> ts = Generate(mc.nvfp4_tensors);
  mc.edit(ts);
  auto store = checkpoint::TensorStore::Create("bad", std::move(ts)).value();
  ModelConfig config = Config(true);
  mc.declare(config.modelopt);
  DraftFamily drafter;
  std::vector<std::string> unexpected;
  Status s = checkpoint::VerifyTensors(config, *store, &drafter, &unexpected);
  if (s.ok()) {  // the value checks (finite scales) happen at load
    s = LoadWeights(config, *store).status();
  }
  ASSERT_FALSE(s.ok());
  for (const std::string& m : mc.message) EXPECT_THAT(s.message(), HasSubstr(m));
}

INSTANTIATE_TEST_SUITE_P(Cases, V4Nvfp4Malformed, ::testing::ValuesIn(MalformedCases()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace dsv4::v4
