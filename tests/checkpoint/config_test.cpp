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
    EXPECT_EQ(back->draft_family(), c.draft_family());
    EXPECT_EQ(back->dspark.target_layer_ids, c.dspark.target_layer_ids);
    EXPECT_EQ(back->dspark.markov_rank, c.dspark.markov_rank);
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

json TinyDsparkJson() {
  return ModelConfigToJson(WithDrafter(TinyV4Config(), DraftFamily::kDspark));
}

// The keys of the V4-Flash-0731 config.json (spec §11.4), on the Flash main model.
TEST(ModelConfig, ParsesTheFlash0731DsparkKeys) {
  json j = ModelConfigToJson(PresetConfig("v4-flash").value());
  j["compress_ratios"].push_back(0);
  j["compress_ratios"].push_back(0);  // 46 entries: 43 layers + 3 draft blocks
  j["num_nextn_predict_layers"] = 1;  // still 1: not the block count
  j["dspark_block_size"] = 5;
  j["dspark_noise_token_id"] = 128799;
  j["dspark_target_layer_ids"] = {40, 41, 42};
  j["dspark_markov_rank"] = 256;
  j["expert_dtype"] = "fp4";
  Result<ModelConfig> c = ParseModelConfig(j, "config.json");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->draft_family(), DraftFamily::kDspark);
  EXPECT_EQ(c->num_draft_layers(), 3);
  EXPECT_EQ(c->dspark.num_blocks, 3);
  EXPECT_EQ(c->dspark.block_size, 5);
  EXPECT_EQ(c->dspark.noise_token_id, 128799);
  EXPECT_EQ(c->dspark.target_layer_ids, (std::vector<int64_t>{40, 41, 42}));
  EXPECT_EQ(c->dspark.markov_rank, 256);
  EXPECT_EQ(c->expert_dtype, "fp4");
  EXPECT_EQ(c->compress_ratios.size(), 46u);
  for (int64_t layer : {43, 44, 45}) EXPECT_EQ(c->layer_kind(layer), LayerKind::kSwa);
  EXPECT_EQ(c->CountLayers(LayerKind::kSwa), 2);  // main stack only
  // The built-in preset is the same config.
  const ModelConfig preset = PresetConfig("v4-flash-0731").value();
  EXPECT_EQ(preset.compress_ratios, c->compress_ratios);
  EXPECT_EQ(preset.dspark.target_layer_ids, c->dspark.target_layer_ids);
  EXPECT_EQ(preset.dspark.noise_token_id, c->dspark.noise_token_id);
  EXPECT_EQ(preset.dspark.markov_rank, c->dspark.markov_rank);
  EXPECT_EQ(preset.dspark.block_size, c->dspark.block_size);
}

TEST(ModelConfig, DraftFamilyOfEachLayout) {
  EXPECT_EQ(TinyV4Config().draft_family(), DraftFamily::kMtp);
  EXPECT_EQ(PresetConfig("v4-flash").value().draft_family(), DraftFamily::kMtp);
  const ModelConfig none = WithDrafter(TinyV4Config(), DraftFamily::kNone);
  EXPECT_EQ(none.draft_family(), DraftFamily::kNone);
  EXPECT_EQ(none.num_draft_layers(), 0);
  EXPECT_EQ(none.compress_ratios, TinyV4Config().compress_ratios);
  const ModelConfig dspark = WithDrafter(TinyV4Config(), DraftFamily::kDspark);
  EXPECT_EQ(dspark.dspark.target_layer_ids, (std::vector<int64_t>{2, 3, 4}));
  EXPECT_EQ(dspark.dspark.noise_token_id, 511);  // the last id of a 512-token vocabulary
  EXPECT_EQ(dspark.compress_ratios, (std::vector<int64_t>{0, 4, 128, 4, 128, 0, 0, 0}));
  // Back to April from DSpark: one MTP entry again, DSpark gone.
  const ModelConfig april = WithDrafter(dspark, DraftFamily::kMtp);
  EXPECT_EQ(april.compress_ratios, TinyV4Config().compress_ratios);
  EXPECT_EQ(april.dspark.num_blocks, 0);
  // DSpark keys survive config.json; the transformers-style layer_types list gets one SWA
  // entry per draft block.
  json j = TinyDsparkJson();
  EXPECT_EQ(ParseModelConfig(j, "x").value().dspark.target_layer_ids,
            dspark.dspark.target_layer_ids);
  j.erase("compress_ratios");
  j["layer_types"] = {"sliding_attention", "compressed_sparse_attention",
                      "heavily_compressed_attention", "compressed_sparse_attention",
                      "heavily_compressed_attention"};
  j["compress_rates"] = {{"compressed_sparse_attention", 4}, {"heavily_compressed_attention", 128}};
  Result<ModelConfig> r = ParseModelConfig(j, "x");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->compress_ratios, dspark.compress_ratios);
}

TEST(ModelConfig, DsparkBadInputsGetClearErrors) {
  const std::vector<BadCase> cases = {
      {"ratios one short", [](json& j) { j["compress_ratios"].erase(7); },
       "'compress_ratios' must be a list of num_hidden_layers + DSpark draft blocks = 5 + 3 = 8 "
       "entries"},
      {"ratios one long", [](json& j) { j["compress_ratios"].push_back(0); }, "got 9 entries"},
      {"april-length ratios", [](json& j) { j["compress_ratios"] = {0, 4, 128, 4, 128, 0}; },
       "got 6 entries"},
      {"compressed draft block", [](json& j) { j["compress_ratios"][6] = 4; },
       "0 (SWA-only) at index 6 (DSpark draft block 1), got 4"},
      {"target past the stack", [](json& j) { j["dspark_target_layer_ids"] = {3, 4, 5}; },
       "'dspark_target_layer_ids' must be distinct main-layer ids in [0, num_hidden_layers=5), "
       "got [3, 4, 5]"},
      {"target repeated", [](json& j) { j["dspark_target_layer_ids"] = {4, 4, 3}; },
       "got [4, 4, 3]"},
      {"no targets", [](json& j) { j["dspark_target_layer_ids"] = json::array(); },
       "'dspark_target_layer_ids' must be a non-empty list"},
      {"missing rank", [](json& j) { j.erase("dspark_markov_rank"); },
       "missing field 'dspark_markov_rank'"},
      {"zero rank", [](json& j) { j["dspark_markov_rank"] = 0; },
       "'dspark_markov_rank' must be > 0"},
      {"zero block", [](json& j) { j["dspark_block_size"] = 0; },
       "'dspark_block_size' must be > 0"},
      {"noise outside vocab", [](json& j) { j["dspark_noise_token_id"] = 128799; },
       "'dspark_noise_token_id' must be in [0, vocab_size=512), got 128799"},
      {"fp8 experts", [](json& j) { j["expert_dtype"] = "fp8"; },
       "'expert_dtype' must be 'fp4' (or 'bf16' for a dequantised checkpoint), got 'fp8'"},
      {"expert dtype type", [](json& j) { j["expert_dtype"] = 4; },
       "'expert_dtype' must be a string"},
  };
  for (const BadCase& c : cases) {
    json j = TinyDsparkJson();
    ASSERT_TRUE(ParseModelConfig(j, "cfg.json").ok());
    c.edit(j);
    Status s = ParseError(j);
    EXPECT_FALSE(s.ok()) << c.what;
    EXPECT_THAT(s.message(), HasSubstr(c.expect)) << c.what;
    EXPECT_THAT(s.message(), HasSubstr("cfg.json")) << c.what;
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

// config.json is read with a size limit (16 MiB; real ones are ~2 KB) and a nesting limit
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
  std::filesystem::resize_file(dir / "config.json", (16 << 20) + 1);  // sparse
  s = LoadModelConfig(dir / "config.json").status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), (dir / "config.json").string() +
                             ": config file is 16777217 bytes, more than the limit of 16777216 "
                             "bytes");
}

}  // namespace
}  // namespace dsv4::checkpoint
