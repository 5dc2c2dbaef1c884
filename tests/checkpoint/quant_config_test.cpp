// Quantisation declarations (spec §11.5): config.json quantization_config with NVIDIA
// ModelOpt's keys, hf_quant_config.json merged in, clear errors for malformed values, and
// DeclaredFor's precedence (quantized_layers, then ignore, then moe_quant_algo).
#include "checkpoint/quant_config.h"

#include <filesystem>
#include <fstream>
#include <functional>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "checkpoint/config.h"
#include "checkpoint/presets.h"

namespace dsv4::checkpoint {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

// The quantization_config of an NVIDIA NVFP4 V4 checkpoint (spec §11.5).
json Nvfp4Quant() {
  return json::parse(R"({
    "quant_method": "modelopt", "fmt": "e4m3", "weight_block_size": [128, 128],
    "quant_algo": "MIXED_PRECISION", "moe_quant_algo": "NVFP4", "group_size": 16,
    "producer": {"name": "modelopt", "version": "0.37.0"},
    "ignore": ["*.attn.*", "*.ffn.shared_experts.*", "head", "mtp.*"],
    "quantized_layers": {"layers.0.ffn.experts.0.w1": {"quant_algo": "NVFP4", "group_size": 16}}
  })");
}

Result<ModelOptQuant> Parse(const json& q) {
  json config = {{"quantization_config", q}};
  WeightFormat format;
  ModelOptQuant m;
  DSV4_RETURN_IF_ERROR(ParseQuantizationConfig(config, "cfg.json", &format, &m));
  EXPECT_EQ(format, WeightFormat::kFp8);
  return m;
}

TEST(QuantConfig, ParsesTheNvfp4Declaration) {
  ModelOptQuant m = Parse(Nvfp4Quant()).value();
  EXPECT_EQ(m.quant_algo, "MIXED_PRECISION");
  EXPECT_EQ(m.moe_quant_algo, "NVFP4");
  EXPECT_TRUE(m.nvfp4_experts());
  EXPECT_EQ(m.group_size, 16);
  EXPECT_EQ(m.producer, "modelopt");
  EXPECT_EQ(m.ignore.size(), 4u);
  EXPECT_EQ(m.quantized_layers.at("layers.0.ffn.experts.0.w1"), "NVFP4");
  // A plain string producer; quant_algo NVFP4 alone also declares the experts.
  json q = Nvfp4Quant();
  q["producer"] = "modelopt";
  q.erase("moe_quant_algo");
  q["quant_algo"] = "NVFP4";
  m = Parse(q).value();
  EXPECT_EQ(m.producer, "modelopt");
  EXPECT_TRUE(m.nvfp4_experts());
  // DeepSeek's own FP8 config declares nothing of the sort.
  m = Parse(json::parse(R"({"quant_method": "fp8", "fmt": "e4m3"})")).value();
  EXPECT_FALSE(m.nvfp4_experts());
  EXPECT_TRUE(m.ignore.empty());
  EXPECT_TRUE(m.quantized_layers.empty());
}

TEST(QuantConfig, RoundTripsThroughModelConfigJson) {
  ModelConfig c = TinyV4Config();
  c.modelopt = Parse(Nvfp4Quant()).value();
  const ModelConfig back = ParseModelConfig(ModelConfigToJson(c), "x").value();
  EXPECT_EQ(back.modelopt.moe_quant_algo, "NVFP4");
  EXPECT_EQ(back.modelopt.group_size, 16);
  EXPECT_EQ(back.modelopt.producer, "modelopt");
  EXPECT_EQ(back.modelopt.ignore, c.modelopt.ignore);
  EXPECT_EQ(back.modelopt.quantized_layers, c.modelopt.quantized_layers);
}

struct BadQuant {
  const char* what;
  std::function<void(json&)> edit;
  std::vector<const char*> expect;  // words the message must contain
};

TEST(QuantConfig, BadDeclarationsGetClearErrors) {
  const std::vector<BadQuant> cases = {
      {"unknown method", [](json& q) { q["quant_method"] = "awq"; },
       {"cfg.json quantization_config", "quant_method 'awq'", "expected 'fp8' or 'modelopt'"}},
      {"unknown algo", [](json& q) { q["moe_quant_algo"] = "W4A8_AWQ"; },
       {"quantisation algorithm 'W4A8_AWQ'", "expected NVFP4, MIXED_PRECISION or FP8"}},
      {"group size", [](json& q) { q["group_size"] = 32; },
       {"field 'group_size' must be 16 for NVFP4, got 32"}},
      {"group size type", [](json& q) { q["group_size"] = "16"; },
       {"field 'group_size' must be an integer, got \"16\""}},
      {"producer type", [](json& q) { q["producer"] = 7; },
       {"field 'producer' must be a string or an object with a 'name', got 7"}},
      {"ignore not a list", [](json& q) { q["ignore"] = "head"; },
       {"field 'ignore' must be a list of strings, got \"head\""}},
      {"ignore entry", [](json& q) { q["ignore"] = {"head", 3}; },
       {"field 'ignore' must be a list of strings"}},
      {"layers not an object", [](json& q) { q["quantized_layers"] = json::array(); },
       {"field 'quantized_layers' must be an object, got []"}},
      {"layer not an object", [](json& q) { q["quantized_layers"]["layers.0.ffn.experts.0.w1"] = 4; },
       {"quantized_layers['layers.0.ffn.experts.0.w1']: must be an object, got 4"}},
      {"layer without algo", [](json& q) { q["quantized_layers"]["layers.0.ffn.experts.0.w1"] = json::object(); },
       {"quantized_layers['layers.0.ffn.experts.0.w1']: missing field 'quant_algo'"}},
      {"layer algo", [](json& q) { q["quantized_layers"]["layers.0.ffn.experts.0.w1"]["quant_algo"] = "INT8"; },
       {"quant_algo 'INT8' (expected NVFP4 or FP8)"}},
      {"fmt", [](json& q) { q["fmt"] = "e5m2"; }, {"fmt 'e5m2' (expected 'e4m3')"}},
      {"not an object", [](json& q) { q = json::array(); }, {"must be an object, got []"}},
  };
  for (const BadQuant& c : cases) {
    json q = Nvfp4Quant();
    c.edit(q);
    Result<ModelOptQuant> r = Parse(q);
    ASSERT_FALSE(r.ok()) << c.what;
    for (const char* e : c.expect) EXPECT_THAT(r.status().message(), HasSubstr(e)) << c.what;
  }
}

TEST(QuantConfig, DeclaredForPrecedence) {
  ModelOptQuant m = Parse(Nvfp4Quant()).value();
  m.quantized_layers["layers.1.attn.wq_a"] = "FP8";
  DeclaredQuant d = DeclaredFor(m, "layers.0.ffn.experts.0.w1", true);
  EXPECT_TRUE(d.nvfp4);
  EXPECT_EQ(d.by, "quantized_layers['layers.0.ffn.experts.0.w1'] NVFP4");
  d = DeclaredFor(m, "layers.1.attn.wq_a", false);  // quantized_layers before ignore
  EXPECT_FALSE(d.nvfp4);
  EXPECT_EQ(d.by, "quantized_layers['layers.1.attn.wq_a'] FP8");
  d = DeclaredFor(m, "layers.2.attn.wkv", false);  // `*` matches dots, as fnmatch
  EXPECT_EQ(d.by, "ignore pattern '*.attn.*'");
  d = DeclaredFor(m, "mtp.1.ffn.experts.3.w2", false);
  EXPECT_EQ(d.by, "ignore pattern 'mtp.*'");
  EXPECT_FALSE(d.nvfp4);
  d = DeclaredFor(m, "head", false);
  EXPECT_EQ(d.by, "ignore pattern 'head'");
  d = DeclaredFor(m, "layers.3.ffn.experts.9.w3", true);
  EXPECT_TRUE(d.nvfp4);
  EXPECT_EQ(d.by, "moe_quant_algo NVFP4");
  d = DeclaredFor(m, "layers.3.ffn.gate", false);
  EXPECT_TRUE(d.by.empty());
  d = DeclaredFor(ModelOptQuant{}, "layers.3.ffn.experts.9.w3", true);
  EXPECT_TRUE(d.by.empty());
}

// hf_quant_config.json beside config.json: its keys fill what config.json leaves out; a
// contradiction is refused naming the file.
class HfQuantConfig : public ::testing::Test {
 protected:
  void SetUp() override {
    // One folder per test: ctest runs the tests of this file in parallel.
    dir_ = fs::path(DSV4_TEST_TMPDIR) / "hf_quant_config" /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void Write(const json& config, const std::string& hf) {
    std::ofstream(dir_ / "config.json") << config.dump();
    std::ofstream(dir_ / "hf_quant_config.json") << hf;
  }
  fs::path dir_;
};

TEST_F(HfQuantConfig, FillsWhatConfigJsonLeavesOut) {
  json config = ModelConfigToJson(TinyV4Config());  // DeepSeek's FP8 quantization_config
  Write(config, R"({"producer": {"name": "modelopt"}, "quantization": {"quant_algo": "NVFP4",
      "group_size": 16, "exclude_modules": ["*.attn.*", "head"],
      "quantized_layers": {"layers.0.ffn.experts.1.w2": {"quant_algo": "NVFP4"}}}})");
  ModelConfig c = LoadModelConfig(dir_).value();
  EXPECT_TRUE(c.modelopt.nvfp4_experts());
  EXPECT_EQ(c.modelopt.moe_quant_algo, "NVFP4");
  EXPECT_EQ(c.modelopt.group_size, 16);
  EXPECT_EQ(c.modelopt.ignore, (std::vector<std::string>{"*.attn.*", "head"}));
  EXPECT_EQ(c.modelopt.quantized_layers.at("layers.0.ffn.experts.1.w2"), "NVFP4");
}

TEST_F(HfQuantConfig, ContradictionsAndBadFilesNameTheFile) {
  ModelConfig nv = TinyV4Config();
  nv.modelopt.moe_quant_algo = "NVFP4";
  nv.modelopt.quantized_layers["layers.0.ffn.experts.1.w2"] = "NVFP4";
  const json config = ModelConfigToJson(nv);
  const std::string hf = (dir_ / "hf_quant_config.json").string();
  struct Case {
    std::string text;
    std::vector<std::string> expect;
  };
  const std::vector<Case> cases = {
      {R"({"quantization": {"quant_algo": "FP8"}})",
       {hf + " quantization: quant_algo 'FP8' contradicts config.json moe_quant_algo 'NVFP4'"}},
      {R"({"quantization": {"quant_algo": "NVFP4",
           "quantized_layers": {"layers.0.ffn.experts.1.w2": {"quant_algo": "FP8"}}}})",
       {"quantized_layers['layers.0.ffn.experts.1.w2'] is FP8 but config.json says NVFP4"}},
      {R"({"quantization": {"quant_algo": "NVFP4", "group_size": 32}})",
       {hf, "'group_size' must be 16 for NVFP4, got 32"}},
      {R"({"quantization": [1]})", {hf, "expected an object with a 'quantization' object"}},
      {R"({"quantization": {"exclude_modules": "head"}})",
       {hf, "field 'exclude_modules' must be a list of strings"}},
      {"{not json", {hf}},
  };
  for (const Case& c : cases) {
    Write(config, c.text);
    Result<ModelConfig> r = LoadModelConfig(dir_);
    ASSERT_FALSE(r.ok()) << c.text;
    for (const std::string& e : c.expect) EXPECT_THAT(r.status().message(), HasSubstr(e)) << c.text;
  }
}

}  // namespace
}  // namespace dsv4::checkpoint
