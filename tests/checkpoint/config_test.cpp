// config.json -> ModelConfig: official keys, known renames, and clear errors.
#include "checkpoint/config.h"

#include <fstream>
#include <functional>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "checkpoint/presets.h"

namespace dsv4::checkpoint {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

json TinyJson() { return ModelConfigToJson(TinyV4Config()); }

Status ParseError(const json& j) {
  Result<ModelConfig> r = ParseModelConfig(j, "cfg.json");
  return r.ok() ? Status::Ok() : r.status();
}

TEST(ModelConfig, PresetsAreValidAndRoundTripThroughJson) {
  for (const std::string& name : PresetNames()) {
    ModelConfig c = PresetConfig(name).value();
    ASSERT_TRUE(ValidateModelConfig(c, name).ok()) << ValidateModelConfig(c, name).ToString();
    Result<ModelConfig> back = ParseModelConfig(ModelConfigToJson(c), name);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(back->hidden_size, c.hidden_size);
    EXPECT_EQ(back->compress_ratios, c.compress_ratios);
    EXPECT_EQ(back->num_hash_layers, c.num_hash_layers);
    EXPECT_EQ(back->yarn.enabled, c.yarn.enabled);
    EXPECT_EQ(back->yarn.factor, c.yarn.factor);
    EXPECT_EQ(back->kv_lora_rank, c.kv_lora_rank);
    EXPECT_EQ(back->weight_format, c.weight_format);
  }
  EXPECT_EQ(PresetConfig("v9").status().code(), StatusCode::kNotFound);
  EXPECT_THAT(PresetConfig("v9").status().message(), HasSubstr("v4-flash"));
}

TEST(ModelConfig, LayerScheduleOfRealModels) {
  const ModelConfig flash = PresetConfig("v4-flash").value();
  EXPECT_EQ(flash.compress_ratios.size(), 44u);
  EXPECT_EQ(flash.CountLayers(LayerKind::kSwa), 2);
  EXPECT_EQ(flash.CountLayers(LayerKind::kCsa), 21);
  EXPECT_EQ(flash.CountLayers(LayerKind::kHca), 20);
  EXPECT_EQ(flash.layer_kind(43), LayerKind::kSwa);  // MTP
  const ModelConfig pro = PresetConfig("v4-pro").value();
  EXPECT_EQ(pro.compress_ratios.size(), 62u);
  EXPECT_EQ(pro.CountLayers(LayerKind::kSwa), 0);
  EXPECT_EQ(pro.CountLayers(LayerKind::kCsa), 30);
  EXPECT_EQ(pro.CountLayers(LayerKind::kHca), 31);
  EXPECT_EQ(pro.d_nope(), 448);
}

TEST(ModelConfig, AcceptsCompressRatesRename) {
  json j = TinyJson();
  j["compress_rates"] = j["compress_ratios"];
  j.erase("compress_ratios");
  ModelConfig c = ParseModelConfig(j, "x").value();
  EXPECT_EQ(c.compress_ratios, TinyV4Config().compress_ratios);
}

TEST(ModelConfig, AcceptsTransformersStyleKeys) {
  json j = TinyJson();
  j.erase("compress_ratios");
  j.erase("num_hash_layers");
  j.erase("qk_rope_head_dim");
  j.erase("rope_scaling");
  j.erase("rope_theta");
  j.erase("compress_rope_theta");
  j["layer_types"] = {"sliding_attention", "compressed_sparse_attention",
                      "heavily_compressed_attention", "compressed_sparse_attention",
                      "heavily_compressed_attention"};
  j["compress_rates"] = {{"compressed_sparse_attention", 4}, {"heavily_compressed_attention", 128}};
  j["mlp_layer_types"] = {"hash_moe", "hash_moe", "moe", "moe", "moe"};
  j["partial_rotary_factor"] = 0.5;
  j["rope_parameters"] = {
      {"main", {{"rope_type", "default"}, {"rope_theta", 10000.0}}},
      {"compress",
       {{"rope_type", "yarn"}, {"rope_theta", 160000.0}, {"factor", 16.0},
        {"original_max_position_embeddings", 65536}, {"beta_fast", 32}, {"beta_slow", 1}}}};
  Result<ModelConfig> r = ParseModelConfig(j, "x");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const ModelConfig want = TinyV4Config();
  EXPECT_EQ(r->compress_ratios, want.compress_ratios);  // MTP entry appended as 0
  EXPECT_EQ(r->num_hash_layers, 2);
  EXPECT_EQ(r->qk_rope_head_dim, 64);
  EXPECT_EQ(r->rope_theta, 10000.0);
  EXPECT_EQ(r->compress_rope_theta, 160000.0);
  EXPECT_TRUE(r->yarn.enabled);  // pitfall §15.10: nested rope_parameters must keep YaRN
  EXPECT_EQ(r->yarn.factor, 16.0);
  EXPECT_EQ(r->yarn.original_max_position_embeddings, 65536);
}

TEST(ModelConfig, WeightFormatFromQuantizationConfig) {
  json j = TinyJson();
  EXPECT_EQ(ParseModelConfig(j, "x")->weight_format, WeightFormat::kFp8);
  j.erase("quantization_config");
  EXPECT_EQ(ParseModelConfig(j, "x")->weight_format, WeightFormat::kBf16);
  j = TinyJson();
  j["quantization_config"]["weight_block_size"] = {64, 64};
  EXPECT_THAT(ParseError(j).message(), HasSubstr("weight_block_size"));
}

struct BadCase {
  const char* what;
  std::function<void(json&)> edit;
  const char* expect;  // words the message must contain
};

TEST(ModelConfig, BadInputsGetClearErrors) {
  const std::vector<BadCase> cases = {
      {"missing field", [](json& j) { j.erase("hidden_size"); }, "missing field 'hidden_size'"},
      {"wrong type", [](json& j) { j["hidden_size"] = "big"; }, "'hidden_size' must be an integer"},
      {"unknown model", [](json& j) { j["model_type"] = "llama"; }, "model_type 'llama'"},
      {"hidden not x128", [](json& j) { j["hidden_size"] = 200; }, "'hidden_size'"},
      {"nope not x64", [](json& j) { j["head_dim"] = 160; }, "'head_dim'"},
      {"groups", [](json& j) { j["o_groups"] = 3; }, "'o_groups'"},
      {"index dim", [](json& j) { j["index_head_dim"] = 96; }, "power of two"},
      {"topk experts", [](json& j) { j["num_experts_per_tok"] = 9; }, "'num_experts_per_tok'"},
      {"short ratios", [](json& j) { j["compress_ratios"] = {0, 4}; }, "'compress_ratios'"},
      {"bad ratio", [](json& j) { j["compress_ratios"][1] = 8; }, "entries 0, 4 or 128, got 8"},
      {"hash layers", [](json& j) { j["num_hash_layers"] = 9; }, "'num_hash_layers'"},
      {"kv heads", [](json& j) { j["num_key_value_heads"] = 8; }, "num_key_value_heads"},
      {"rope type", [](json& j) { j["rope_scaling"]["type"] = "longrope"; }, "'longrope'"},
      {"yarn factor", [](json& j) { j["rope_scaling"].erase("factor"); }, "'factor'"},
      {"scoring", [](json& j) { j["scoring_func"] = "softmax"; }, "'scoring_func'"},
      {"eos", [](json& j) { j["eos_token_id"] = 100000; }, "'eos_token_id'"},
      {"not object", [](json& j) { j = json::array(); }, "JSON object"},
  };
  for (const BadCase& c : cases) {
    json j = TinyJson();
    c.edit(j);
    Status s = ParseError(j);
    EXPECT_FALSE(s.ok()) << c.what;
    EXPECT_THAT(s.message(), HasSubstr(c.expect)) << c.what;
    if (c.edit && std::string(c.what) != "not object") {
      EXPECT_THAT(s.message(), HasSubstr("cfg.json")) << c.what;
    }
  }
}

TEST(ModelConfig, V32BadInputs) {
  json j = ModelConfigToJson(TinyV32Config());
  ASSERT_TRUE(ParseModelConfig(j, "x").ok());
  j["n_group"] = 3;
  EXPECT_THAT(ParseError(j).message(), HasSubstr("'n_group'"));
  j = ModelConfigToJson(TinyV32Config());
  j["kv_lora_rank"] = 100;
  EXPECT_THAT(ParseError(j).message(), HasSubstr("'kv_lora_rank'"));
  j = ModelConfigToJson(TinyV32Config());
  j["topk_group"] = 5;
  EXPECT_THAT(ParseError(j).message(), HasSubstr("'topk_group'"));
}

TEST(ModelConfig, LoadFromMissingOrBrokenFile) {
  const std::filesystem::path dir = DSV4_TEST_TMPDIR "/config_files";
  std::filesystem::create_directories(dir);
  EXPECT_EQ(LoadModelConfig(dir / "nope").status().code(), StatusCode::kNotFound);
  { std::ofstream(dir / "config.json") << "{\"model_type\": "; }
  Status s = LoadModelConfig(dir).status();
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("config.json"));
}

// config.json is read with a size limit (1 MiB; real ones are ~2 KB) and a nesting limit
// checked before the parser sees it: 100,000 levels would otherwise reach nlohmann's recursion.
TEST(ModelConfig, DeepOrHugeConfigFilesAreRefusedNamingTheFile) {
  const std::filesystem::path dir = DSV4_TEST_TMPDIR "/config_limits";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string deep = "{\"model_type\": \"deepseek_v4\", \"x\": " +
                           std::string(100'000, '[') + std::string(100'000, ']') + "}";
  { std::ofstream(dir / "config.json") << deep; }
  Status s = LoadModelConfig(dir).status();
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr((dir / "config.json").string() +
                                     " (config file): JSON nested deeper than the limit of 64 "
                                     "levels (level 65 opens at byte"));
  std::filesystem::resize_file(dir / "config.json", (1 << 20) + 1);  // sparse
  s = LoadModelConfig(dir / "config.json").status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), (dir / "config.json").string() +
                             ": config file is 1048577 bytes, more than the limit of 1048576 "
                             "bytes");
}

}  // namespace
}  // namespace dsv4::checkpoint
