#include "checkpoint/config.h"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "checkpoint/field_reader.h"
#include "checkpoint/json_file.h"
#include "checkpoint/quant_config.h"
#include "core/file_read.h"

namespace dsv4::checkpoint {
namespace {

using nlohmann::json;

Status ParseYarn(const json& rs, std::string_view label, YarnConfig* y) {
  if (!rs.is_object()) {
    return Status::InvalidArgument(std::string(label) + ": rope scaling must be an object, got " +
                                   rs.dump());
  }
  FieldReader r(rs, label);
  std::string type = "default";
  if (r.Has("type")) DSV4_RETURN_IF_ERROR(r.String("type", &type));
  if (r.Has("rope_type")) DSV4_RETURN_IF_ERROR(r.String("rope_type", &type));
  if (type == "default") {
    y->enabled = false;
    return Status::Ok();
  }
  if (type != "yarn") {
    return Status::Unimplemented(std::string(label) + ": rope scaling type '" + type +
                                 "' is not supported (expected 'yarn')");
  }
  y->enabled = true;
  DSV4_RETURN_IF_ERROR(r.Float("factor", &y->factor));
  DSV4_RETURN_IF_ERROR(
      r.Int("original_max_position_embeddings", &y->original_max_position_embeddings));
  DSV4_RETURN_IF_ERROR(r.Float("beta_fast", &y->beta_fast, false));
  DSV4_RETURN_IF_ERROR(r.Float("beta_slow", &y->beta_slow, false));
  DSV4_RETURN_IF_ERROR(r.Float("mscale", &y->mscale, false));
  DSV4_RETURN_IF_ERROR(r.Float("mscale_all_dim", &y->mscale_all_dim, false));
  return Status::Ok();
}

Status ParseCommon(const FieldReader& r, ModelConfig* c) {
  DSV4_RETURN_IF_ERROR(r.Int("vocab_size", &c->vocab_size));
  DSV4_RETURN_IF_ERROR(r.Int("hidden_size", &c->hidden_size));
  DSV4_RETURN_IF_ERROR(r.Int("num_hidden_layers", &c->num_hidden_layers));
  DSV4_RETURN_IF_ERROR(r.Int("num_attention_heads", &c->num_attention_heads));
  DSV4_RETURN_IF_ERROR(r.Int("q_lora_rank", &c->q_lora_rank));
  DSV4_RETURN_IF_ERROR(r.Int("max_position_embeddings", &c->max_position_embeddings));
  DSV4_RETURN_IF_ERROR(r.Float("rms_norm_eps", &c->rms_norm_eps, false));
  DSV4_RETURN_IF_ERROR(r.Float("rope_theta", &c->rope_theta, false));
  DSV4_RETURN_IF_ERROR(r.Int("n_routed_experts", &c->n_routed_experts));
  DSV4_RETURN_IF_ERROR(r.Int("n_shared_experts", &c->n_shared_experts));
  DSV4_RETURN_IF_ERROR(r.Int("num_experts_per_tok", &c->num_experts_per_tok));
  DSV4_RETURN_IF_ERROR(r.Int("moe_intermediate_size", &c->moe_intermediate_size));
  DSV4_RETURN_IF_ERROR(r.Float("routed_scaling_factor", &c->routed_scaling_factor));
  DSV4_RETURN_IF_ERROR(r.Bool("norm_topk_prob", &c->norm_topk_prob, false));
  DSV4_RETURN_IF_ERROR(r.String("scoring_func", &c->scoring_func));
  DSV4_RETURN_IF_ERROR(r.Int("index_n_heads", &c->index_n_heads));
  DSV4_RETURN_IF_ERROR(r.Int("index_head_dim", &c->index_head_dim));
  DSV4_RETURN_IF_ERROR(r.Int("index_topk", &c->index_topk));
  DSV4_RETURN_IF_ERROR(r.Int("num_nextn_predict_layers", &c->num_nextn_predict_layers, false));
  DSV4_RETURN_IF_ERROR(r.Int("bos_token_id", &c->bos_token_id, false));
  if (r.Has("eos_token_id")) {
    // HF allows a list; the first id is the primary end-of-sequence token.
    Status s = r.Int("eos_token_id", &c->eos_token_id);
    if (!s.ok()) return s;
  }
  bool tie = false;
  DSV4_RETURN_IF_ERROR(r.Bool("tie_word_embeddings", &tie, false));
  if (tie) return Status::Unimplemented("tie_word_embeddings=true is not a DeepSeek layout");
  return Status::Ok();
}

// DSpark draft blocks (spec §11.4): all four dspark_* keys, or none of them.
Status ParseDspark(const FieldReader& r, DsparkConfig* d) {
  static constexpr const char* kKeys[] = {"dspark_target_layer_ids", "dspark_block_size",
                                          "dspark_noise_token_id", "dspark_markov_rank"};
  bool any = false;
  for (const char* k : kKeys) any = any || r.Has(k);
  if (!any) return Status::Ok();
  for (const char* k : kKeys) {
    if (!r.Has(k)) {
      return r.Missing(k, k == kKeys[0] ? "a list of layer ids, as every DSpark config has"
                                        : "an integer, as every DSpark config has");
    }
  }
  DSV4_RETURN_IF_ERROR(r.IntList("dspark_target_layer_ids", &d->target_layer_ids));
  if (d->target_layer_ids.empty()) {
    return r.Wrong("dspark_target_layer_ids", "a non-empty list of layer ids", json::array());
  }
  DSV4_RETURN_IF_ERROR(r.Int("dspark_block_size", &d->block_size));
  DSV4_RETURN_IF_ERROR(r.Int("dspark_noise_token_id", &d->noise_token_id));
  DSV4_RETURN_IF_ERROR(r.Int("dspark_markov_rank", &d->markov_rank));
  d->num_blocks = static_cast<int64_t>(d->target_layer_ids.size());
  return Status::Ok();
}

Status ParseV4(const json& j, std::string_view label, ModelConfig* c) {
  FieldReader r(j, label);
  DSV4_RETURN_IF_ERROR(r.Int("head_dim", &c->head_dim));
  int64_t kv_heads = 1;
  DSV4_RETURN_IF_ERROR(r.Int("num_key_value_heads", &kv_heads, false));
  if (kv_heads != 1) {
    return Status::InvalidArgument(std::string(label) +
                                   ": num_key_value_heads must be 1 (shared K=V head), got " +
                                   std::to_string(kv_heads));
  }
  if (r.Has("qk_rope_head_dim")) {
    DSV4_RETURN_IF_ERROR(r.Int("qk_rope_head_dim", &c->qk_rope_head_dim));
  } else if (r.Has("partial_rotary_factor")) {
    double f = 0;
    DSV4_RETURN_IF_ERROR(r.Float("partial_rotary_factor", &f));
    c->qk_rope_head_dim = static_cast<int64_t>(std::llround(f * static_cast<double>(c->head_dim)));
  } else {
    return r.Missing("qk_rope_head_dim", "an integer (or partial_rotary_factor)");
  }
  DSV4_RETURN_IF_ERROR(r.Int("o_groups", &c->o_groups));
  DSV4_RETURN_IF_ERROR(r.Int("o_lora_rank", &c->o_lora_rank));
  DSV4_RETURN_IF_ERROR(r.Int("sliding_window", &c->sliding_window));
  DSV4_RETURN_IF_ERROR(r.Int("hc_mult", &c->hc_mult));
  DSV4_RETURN_IF_ERROR(r.Int("hc_sinkhorn_iters", &c->hc_sinkhorn_iters));
  DSV4_RETURN_IF_ERROR(r.Float("hc_eps", &c->hc_eps, false));
  DSV4_RETURN_IF_ERROR(r.Float("swiglu_limit", &c->swiglu_limit));
  DSV4_RETURN_IF_ERROR(r.String("expert_dtype", &c->expert_dtype, false));
  DSV4_RETURN_IF_ERROR(ParseDspark(r, &c->dspark));

  // Layer schedule: compress_ratios (official), or compress_rates as a list (rename), or
  // transformers' layer_types + compress_rates dict (no draft entries: draft layers are SWA-only).
  const char* ratios_key = r.Has("compress_ratios") ? "compress_ratios" : "compress_rates";
  if (!r.Has(ratios_key)) return r.Missing("compress_ratios", "a list of integers");
  if (j.at(ratios_key).is_array()) {
    DSV4_RETURN_IF_ERROR(r.IntList(ratios_key, &c->compress_ratios));
  } else if (j.at(ratios_key).is_object() && r.Has("layer_types") &&
             j.at("layer_types").is_array()) {
    const json& rates = j.at(ratios_key);
    c->compress_ratios.clear();
    for (const json& t : j.at("layer_types")) {
      std::string name = t.is_string() ? t.get<std::string>() : t.dump();
      if (name == "sliding_attention") {
        c->compress_ratios.push_back(0);
      } else if (rates.contains(name) && rates.at(name).is_number_integer()) {
        c->compress_ratios.push_back(rates.at(name).get<int64_t>());
      } else {
        return Status::InvalidArgument(std::string(label) + ": layer_types entry " + t.dump() +
                                       " has no integer rate in " + ratios_key);
      }
    }
    c->compress_ratios.resize(
        c->compress_ratios.size() + std::max<int64_t>(1, c->dspark.num_blocks), 0);
  } else {
    return r.Wrong(ratios_key, "a list of integers (or a dict with layer_types)",
                   j.at(ratios_key));
  }

  if (r.Has("num_hash_layers")) {
    DSV4_RETURN_IF_ERROR(r.Int("num_hash_layers", &c->num_hash_layers));
  } else if (r.Has("mlp_layer_types") && j.at("mlp_layer_types").is_array()) {
    c->num_hash_layers = 0;
    for (const json& t : j.at("mlp_layer_types")) {
      if (t != "hash_moe") break;
      ++c->num_hash_layers;
    }
  } else {
    return r.Missing("num_hash_layers", "an integer");
  }

  // RoPE: rope_theta + compress_rope_theta + rope_scaling (official), or nested
  // rope_parameters {main, compress} as written by transformers' save_pretrained.
  if (r.Has("rope_parameters") && j.at("rope_parameters").is_object() &&
      j.at("rope_parameters").contains("main") && j.at("rope_parameters").contains("compress")) {
    const json& rp = j.at("rope_parameters");
    std::string where = std::string(label) + " rope_parameters";
    FieldReader main(rp.at("main"), where + ".main");
    FieldReader comp(rp.at("compress"), where + ".compress");
    if (!rp.at("main").is_object() || !rp.at("compress").is_object()) {
      return Status::InvalidArgument(where + ": 'main' and 'compress' must be objects");
    }
    DSV4_RETURN_IF_ERROR(main.Float("rope_theta", &c->rope_theta));
    DSV4_RETURN_IF_ERROR(comp.Float("rope_theta", &c->compress_rope_theta));
    YarnConfig main_yarn;
    DSV4_RETURN_IF_ERROR(ParseYarn(rp.at("main"), where + ".main", &main_yarn));
    if (main_yarn.enabled) {
      return Status::InvalidArgument(where + ".main: SWA-only layers use plain RoPE, got yarn");
    }
    DSV4_RETURN_IF_ERROR(ParseYarn(rp.at("compress"), where + ".compress", &c->yarn));
  } else {
    DSV4_RETURN_IF_ERROR(r.Float("compress_rope_theta", &c->compress_rope_theta));
    const char* key = r.Has("rope_scaling") ? "rope_scaling" : "rope_parameters";
    if (r.Has(key)) DSV4_RETURN_IF_ERROR(ParseYarn(j.at(key), std::string(label) + " " + key, &c->yarn));
  }
  return Status::Ok();
}

Status ParseV32(const json& j, std::string_view label, ModelConfig* c) {
  FieldReader r(j, label);
  DSV4_RETURN_IF_ERROR(r.Int("qk_rope_head_dim", &c->qk_rope_head_dim));
  DSV4_RETURN_IF_ERROR(r.Int("kv_lora_rank", &c->kv_lora_rank));
  DSV4_RETURN_IF_ERROR(r.Int("qk_nope_head_dim", &c->qk_nope_head_dim));
  DSV4_RETURN_IF_ERROR(r.Int("v_head_dim", &c->v_head_dim));
  DSV4_RETURN_IF_ERROR(r.Int("intermediate_size", &c->intermediate_size));
  DSV4_RETURN_IF_ERROR(r.Int("first_k_dense_replace", &c->first_k_dense_replace));
  DSV4_RETURN_IF_ERROR(r.Int("n_group", &c->n_group));
  DSV4_RETURN_IF_ERROR(r.Int("topk_group", &c->topk_group));
  if (r.Has("rope_scaling")) {
    DSV4_RETURN_IF_ERROR(
        ParseYarn(j.at("rope_scaling"), std::string(label) + " rope_scaling", &c->yarn));
  }
  return Status::Ok();
}

std::string Num(int64_t v) { return std::to_string(v); }

}  // namespace

std::string_view ArchName(Arch a) { return a == Arch::kV4 ? "deepseek_v4" : "deepseek_v32"; }

std::string_view LayerKindName(LayerKind k) {
  switch (k) {
    case LayerKind::kSwa: return "SWA";
    case LayerKind::kCsa: return "CSA";
    case LayerKind::kHca: return "HCA";
  }
  return "?";
}

std::string_view DraftFamilyName(DraftFamily f) {
  switch (f) {
    case DraftFamily::kNone: return "none";
    case DraftFamily::kMtp: return "April MTP";
    case DraftFamily::kDspark: return "DSpark";
  }
  return "?";
}

DraftFamily ModelConfig::draft_family() const {
  if (dspark.num_blocks > 0) return DraftFamily::kDspark;
  return num_nextn_predict_layers > 0 ? DraftFamily::kMtp : DraftFamily::kNone;
}

int64_t ModelConfig::num_draft_layers() const {
  switch (draft_family()) {
    case DraftFamily::kNone: return 0;
    case DraftFamily::kMtp: return 1;
    case DraftFamily::kDspark: return dspark.num_blocks;
  }
  return 0;
}

int64_t ModelConfig::ratio(int64_t layer) const {
  DSV4_CHECK(layer >= 0 && layer < num_hidden_layers + std::max<int64_t>(1, num_draft_layers()));
  return layer < static_cast<int64_t>(compress_ratios.size()) ? compress_ratios[layer] : 0;
}

LayerKind ModelConfig::layer_kind(int64_t layer) const {
  int64_t m = ratio(layer);
  return m == 0 ? LayerKind::kSwa : (m == 4 ? LayerKind::kCsa : LayerKind::kHca);
}

int64_t ModelConfig::CountLayers(LayerKind k) const {
  int64_t n = 0;
  for (int64_t i = 0; i < num_hidden_layers; ++i) n += layer_kind(i) == k;
  return n;
}

Result<ModelConfig> ParseModelConfig(const nlohmann::json& j, std::string_view label) {
  if (!j.is_object()) {
    return Status::InvalidArgument(std::string(label) + ": config must be a JSON object");
  }
  FieldReader r(j, label);
  std::string model_type;
  DSV4_RETURN_IF_ERROR(r.String("model_type", &model_type));
  ModelConfig c;
  if (model_type == "deepseek_v4") {
    c.arch = Arch::kV4;
  } else if (model_type == "deepseek_v32") {
    c.arch = Arch::kV32;
  } else {
    return Status::Unimplemented(std::string(label) + ": model_type '" + model_type +
                                 "' is not supported (expected 'deepseek_v4' or 'deepseek_v32')");
  }
  DSV4_RETURN_IF_ERROR(ParseCommon(r, &c));
  DSV4_RETURN_IF_ERROR(c.arch == Arch::kV4 ? ParseV4(j, label, &c) : ParseV32(j, label, &c));
  DSV4_RETURN_IF_ERROR(ParseQuantizationConfig(j, label, &c.weight_format, &c.modelopt));
  DSV4_RETURN_IF_ERROR(ValidateModelConfig(c, label));
  return c;
}

Result<ModelConfig> LoadModelConfig(const std::filesystem::path& path) {
  std::filesystem::path file = path;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) file = path / "config.json";
  DSV4_ASSIGN_OR_RETURN(const nlohmann::json j,
                        ReadJsonFile(file, kMaxConfigJsonBytes, "config file"));
  DSV4_ASSIGN_OR_RETURN(ModelConfig c, ParseModelConfig(j, file.string()));
  const std::filesystem::path hf = file.parent_path() / "hf_quant_config.json";
  if (std::filesystem::exists(hf, ec)) DSV4_RETURN_IF_ERROR(MergeHfQuantConfig(hf, &c.modelopt));
  return c;
}

namespace {

bool IsPow2(int64_t v) { return v > 0 && (v & (v - 1)) == 0; }

// Collects the first violated rule as an error naming the field, the rule and the value.
class Rules {
 public:
  explicit Rules(std::string_view label) : label_(label) {}
  void Require(bool ok, const char* field, const std::string& expected, const std::string& got) {
    if (ok || !status_.ok()) return;
    status_ = Status::InvalidArgument(std::string(label_) + ": field '" + field + "' must be " +
                                      expected + ", got " + got);
  }
  void Positive(const char* field, int64_t v) { Require(v > 0, field, "> 0", Num(v)); }
  void MultipleOf(const char* field, int64_t v, int64_t m, const char* why) {
    Require(v > 0 && v % m == 0, field, "a positive multiple of " + Num(m) + " (" + why + ")",
            Num(v));
  }
  Status status() const { return status_; }

 private:
  std::string_view label_;
  Status status_;
};

void ValidateCommon(const ModelConfig& c, Rules& r) {
  r.Positive("vocab_size", c.vocab_size);
  r.MultipleOf("hidden_size", c.hidden_size, 128, "FP8 activation blocks of 128");
  r.Positive("num_hidden_layers", c.num_hidden_layers);
  r.Positive("num_attention_heads", c.num_attention_heads);
  r.MultipleOf("q_lora_rank", c.q_lora_rank, 128, "FP8 activation blocks of 128");
  r.Require(c.qk_rope_head_dim > 0 && c.qk_rope_head_dim % 2 == 0, "qk_rope_head_dim",
            "a positive even number (RoPE pairs)", Num(c.qk_rope_head_dim));
  r.Positive("max_position_embeddings", c.max_position_embeddings);
  r.Require(c.rms_norm_eps > 0, "rms_norm_eps", "> 0", std::to_string(c.rms_norm_eps));
  r.Require(c.rope_theta > 1, "rope_theta", "> 1", std::to_string(c.rope_theta));
  r.Positive("n_routed_experts", c.n_routed_experts);
  r.Require(c.n_shared_experts >= 0, "n_shared_experts", ">= 0", Num(c.n_shared_experts));
  r.Require(c.num_experts_per_tok > 0 && c.num_experts_per_tok <= c.n_routed_experts,
            "num_experts_per_tok", "in [1, n_routed_experts=" + Num(c.n_routed_experts) + "]",
            Num(c.num_experts_per_tok));
  r.MultipleOf("moe_intermediate_size", c.moe_intermediate_size, 128,
               "FP8 activation blocks of 128");
  r.Positive("index_n_heads", c.index_n_heads);
  r.Require(IsPow2(c.index_head_dim) && c.index_head_dim >= 32 &&
                c.index_head_dim > c.qk_rope_head_dim,
            "index_head_dim",
            "a power of two >= 32 and > qk_rope_head_dim (Hadamard, FP4 blocks of 32)",
            Num(c.index_head_dim));
  r.Positive("index_topk", c.index_topk);
  r.Require(c.num_nextn_predict_layers >= 0 && c.num_nextn_predict_layers <= 1,
            "num_nextn_predict_layers", "0 or 1", Num(c.num_nextn_predict_layers));
  r.Require(c.bos_token_id >= 0 && c.bos_token_id < c.vocab_size, "bos_token_id",
            "in [0, vocab_size)", Num(c.bos_token_id));
  r.Require(c.eos_token_id >= 0 && c.eos_token_id < c.vocab_size, "eos_token_id",
            "in [0, vocab_size)", Num(c.eos_token_id));
  if (c.yarn.enabled) {
    r.Require(c.yarn.factor >= 1, "rope_scaling.factor", ">= 1", std::to_string(c.yarn.factor));
    r.Positive("rope_scaling.original_max_position_embeddings",
               c.yarn.original_max_position_embeddings);
  }
}

std::string List(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + Num(v[i]);
  return s + "]";
}

// DSpark (spec §11.4): one SWA-only compress_ratios entry per draft block after the main
// layers, target layers inside the main stack, token ids inside the vocabulary.
void ValidateDspark(const ModelConfig& c, Rules& r) {
  const DsparkConfig& d = c.dspark;
  const int64_t L = c.num_hidden_layers;
  const int64_t num_ratios = static_cast<int64_t>(c.compress_ratios.size());
  r.Require(num_ratios == L + d.num_blocks, "compress_ratios",
            "a list of num_hidden_layers + DSpark draft blocks = " + Num(L) + " + " +
                Num(d.num_blocks) + " = " + Num(L + d.num_blocks) +
                " entries (one 0 per entry of dspark_target_layer_ids)",
            Num(num_ratios) + " entries");
  for (int64_t i = L; i < num_ratios; ++i) {
    r.Require(c.compress_ratios[i] == 0, "compress_ratios",
              "0 (SWA-only) at index " + Num(i) + " (DSpark draft block " + Num(i - L) + ")",
              Num(c.compress_ratios[i]));
  }
  std::vector<int64_t> ids = d.target_layer_ids;
  std::sort(ids.begin(), ids.end());
  r.Require(std::adjacent_find(ids.begin(), ids.end()) == ids.end() &&
                (ids.empty() || (ids.front() >= 0 && ids.back() < L)),
            "dspark_target_layer_ids",
            "distinct main-layer ids in [0, num_hidden_layers=" + Num(L) + ")",
            List(d.target_layer_ids));
  r.Require(static_cast<int64_t>(d.target_layer_ids.size()) == d.num_blocks,
            "dspark_target_layer_ids", "one id per draft block (" + Num(d.num_blocks) + ")",
            List(d.target_layer_ids));
  r.Positive("dspark_block_size", d.block_size);
  r.Require(d.noise_token_id >= 0 && d.noise_token_id < c.vocab_size, "dspark_noise_token_id",
            "in [0, vocab_size=" + Num(c.vocab_size) + ")", Num(d.noise_token_id));
  r.Positive("dspark_markov_rank", d.markov_rank);
}

void ValidateV4(const ModelConfig& c, Rules& r) {
  r.Require(c.scoring_func == "sqrtsoftplus", "scoring_func", "'sqrtsoftplus'",
            "'" + c.scoring_func + "'");
  r.Require(c.head_dim > c.qk_rope_head_dim && c.d_nope() % 64 == 0, "head_dim",
            "qk_rope_head_dim + a positive multiple of 64 (FP8 KV blocks of 64)",
            Num(c.head_dim));
  r.Require(c.o_groups > 0 && c.num_attention_heads % c.o_groups == 0, "o_groups",
            "a divisor of num_attention_heads=" + Num(c.num_attention_heads), Num(c.o_groups));
  r.Require(c.o_groups > 0 && (c.num_attention_heads / std::max<int64_t>(c.o_groups, 1) *
                               c.head_dim) % 128 == 0,
            "o_groups", "such that heads/o_groups*head_dim is a multiple of 128", Num(c.o_groups));
  r.Require(c.o_groups * c.o_lora_rank > 0 && (c.o_groups * c.o_lora_rank) % 128 == 0,
            "o_lora_rank", "such that o_groups*o_lora_rank is a positive multiple of 128",
            Num(c.o_lora_rank));
  r.Positive("sliding_window", c.sliding_window);
  r.Require(c.compress_rope_theta > 1, "compress_rope_theta", "> 1",
            std::to_string(c.compress_rope_theta));
  const int64_t num_ratios = static_cast<int64_t>(c.compress_ratios.size());
  if (c.dspark.num_blocks == 0) {
    r.Require(num_ratios >= c.num_hidden_layers, "compress_ratios",
              "a list of at least num_hidden_layers=" + Num(c.num_hidden_layers) +
                  " entries (one more for the MTP layer)",
              Num(num_ratios) + " entries");
  }
  for (int64_t m : c.compress_ratios) {
    r.Require(m == 0 || m == 4 || m == 128, "compress_ratios", "entries 0, 4 or 128", Num(m));
  }
  r.Require(c.num_hash_layers >= 0 && c.num_hash_layers <= c.num_hidden_layers,
            "num_hash_layers", "in [0, num_hidden_layers]", Num(c.num_hash_layers));
  r.Positive("hc_mult", c.hc_mult);
  r.Positive("hc_sinkhorn_iters", c.hc_sinkhorn_iters);
  r.Require(c.swiglu_limit > 0, "swiglu_limit", "> 0", std::to_string(c.swiglu_limit));
  r.Require(c.moe_intermediate_size % 32 == 0, "moe_intermediate_size",
            "a multiple of 32 (FP4 scale blocks)", Num(c.moe_intermediate_size));
  // "fp4": packed FP4 experts (MXFP4, or NVFP4 by the tensors present); "bf16": this
  // engine's dequantised variant (make-tiny --weights bf16).
  r.Require(c.expert_dtype.empty() || c.expert_dtype == "fp4" || c.expert_dtype == "bf16",
            "expert_dtype", "'fp4' (or 'bf16' for a dequantised checkpoint)",
            "'" + c.expert_dtype + "'");
  if (c.dspark.num_blocks > 0) ValidateDspark(c, r);
}

void ValidateV32(const ModelConfig& c, Rules& r) {
  r.Require(c.scoring_func == "sigmoid", "scoring_func", "'sigmoid'", "'" + c.scoring_func + "'");
  r.MultipleOf("kv_lora_rank", c.kv_lora_rank, 128, "FP8 latent blocks of 128");
  r.Positive("qk_nope_head_dim", c.qk_nope_head_dim);
  r.Positive("v_head_dim", c.v_head_dim);
  r.MultipleOf("intermediate_size", c.intermediate_size, 128, "FP8 activation blocks of 128");
  r.Require(c.first_k_dense_replace >= 0 && c.first_k_dense_replace <= c.num_hidden_layers,
            "first_k_dense_replace", "in [0, num_hidden_layers]", Num(c.first_k_dense_replace));
  r.Require(c.n_group > 0 && c.n_routed_experts % c.n_group == 0 &&
                c.n_routed_experts / c.n_group >= 2,
            "n_group", "a divisor of n_routed_experts leaving >= 2 experts per group",
            Num(c.n_group));
  r.Require(c.topk_group > 0 && c.topk_group <= c.n_group, "topk_group", "in [1, n_group]",
            Num(c.topk_group));
  if (c.n_group > 0) {
    r.Require(c.num_experts_per_tok <= c.topk_group * (c.n_routed_experts / c.n_group),
              "num_experts_per_tok", "<= topk_group * experts per group",
              Num(c.num_experts_per_tok));
  }
}

}  // namespace

Status ValidateModelConfig(const ModelConfig& c, std::string_view label) {
  Rules r(label);
  ValidateCommon(c, r);
  if (c.arch == Arch::kV4) {
    ValidateV4(c, r);
  } else {
    ValidateV32(c, r);
  }
  return r.status();
}

nlohmann::json ModelConfigToJson(const ModelConfig& c) {
  json j;
  j["model_type"] = ArchName(c.arch);
  j["architectures"] = {c.arch == Arch::kV4 ? "DeepseekV4ForCausalLM" : "DeepseekV32ForCausalLM"};
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["q_lora_rank"] = c.q_lora_rank;
  j["qk_rope_head_dim"] = c.qk_rope_head_dim;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["n_routed_experts"] = c.n_routed_experts;
  j["n_shared_experts"] = c.n_shared_experts;
  j["num_experts_per_tok"] = c.num_experts_per_tok;
  j["moe_intermediate_size"] = c.moe_intermediate_size;
  j["routed_scaling_factor"] = c.routed_scaling_factor;
  j["norm_topk_prob"] = c.norm_topk_prob;
  j["scoring_func"] = c.scoring_func;
  j["index_n_heads"] = c.index_n_heads;
  j["index_head_dim"] = c.index_head_dim;
  j["index_topk"] = c.index_topk;
  j["num_nextn_predict_layers"] = c.num_nextn_predict_layers;
  j["bos_token_id"] = c.bos_token_id;
  j["eos_token_id"] = c.eos_token_id;
  j["tie_word_embeddings"] = false;
  j["torch_dtype"] = "bfloat16";
  if (c.yarn.enabled) {
    json y = {{"type", "yarn"},
              {"factor", c.yarn.factor},
              {"original_max_position_embeddings", c.yarn.original_max_position_embeddings},
              {"beta_fast", c.yarn.beta_fast},
              {"beta_slow", c.yarn.beta_slow}};
    if (c.arch == Arch::kV32) {
      y["mscale"] = c.yarn.mscale;
      y["mscale_all_dim"] = c.yarn.mscale_all_dim;
    }
    j["rope_scaling"] = y;
  }
  if (c.weight_format == WeightFormat::kFp8) {
    j["quantization_config"] = {{"quant_method", "fp8"},
                                {"fmt", "e4m3"},
                                {"activation_scheme", "dynamic"},
                                {"scale_fmt", "ue8m0"},
                                {"weight_block_size", {128, 128}}};
    j["quantization_config"].update(ModelOptToJson(c.modelopt));
  }
  if (c.arch == Arch::kV4) {
    j["num_key_value_heads"] = 1;
    j["head_dim"] = c.head_dim;
    j["o_groups"] = c.o_groups;
    j["o_lora_rank"] = c.o_lora_rank;
    j["sliding_window"] = c.sliding_window;
    j["compress_rope_theta"] = c.compress_rope_theta;
    j["compress_ratios"] = c.compress_ratios;
    j["num_hash_layers"] = c.num_hash_layers;
    j["hc_mult"] = c.hc_mult;
    j["hc_sinkhorn_iters"] = c.hc_sinkhorn_iters;
    j["hc_eps"] = c.hc_eps;
    j["swiglu_limit"] = c.swiglu_limit;
    j["expert_dtype"] = c.weight_format == WeightFormat::kFp8 ? "fp4" : "bf16";
    if (c.dspark.num_blocks > 0) {
      j["dspark_block_size"] = c.dspark.block_size;
      j["dspark_noise_token_id"] = c.dspark.noise_token_id;
      j["dspark_target_layer_ids"] = c.dspark.target_layer_ids;
      j["dspark_markov_rank"] = c.dspark.markov_rank;
    }
  } else {
    j["kv_lora_rank"] = c.kv_lora_rank;
    j["qk_nope_head_dim"] = c.qk_nope_head_dim;
    j["v_head_dim"] = c.v_head_dim;
    j["intermediate_size"] = c.intermediate_size;
    j["first_k_dense_replace"] = c.first_k_dense_replace;
    j["n_group"] = c.n_group;
    j["topk_group"] = c.topk_group;
    j["topk_method"] = "noaux_tc";
  }
  return j;
}

}  // namespace dsv4::checkpoint
