#include "checkpoint/presets.h"

#include <algorithm>

#include "core/check.h"

namespace dsv4::checkpoint {
namespace {

ModelConfig V4Common() {
  ModelConfig c;
  c.arch = Arch::kV4;
  c.weight_format = WeightFormat::kFp8;
  c.vocab_size = 129280;
  c.qk_rope_head_dim = 64;
  c.max_position_embeddings = 1048576;
  c.rope_theta = 10000;
  c.compress_rope_theta = 160000;
  c.yarn = {.enabled = true, .factor = 16, .original_max_position_embeddings = 65536,
            .beta_fast = 32, .beta_slow = 1};
  c.n_shared_experts = 1;
  c.num_experts_per_tok = 6;
  c.scoring_func = "sqrtsoftplus";
  c.index_n_heads = 64;
  c.index_head_dim = 128;
  c.num_nextn_predict_layers = 1;
  c.head_dim = 512;
  c.o_lora_rank = 1024;
  c.sliding_window = 128;
  c.num_hash_layers = 3;
  c.hc_mult = 4;
  c.hc_sinkhorn_iters = 20;
  c.hc_eps = 1e-6;
  c.swiglu_limit = 10;
  return c;
}

// Flash: [0, 0, 4, 128, 4, 128, ..., 4, 0]; Pro: [128, 128, 4, 128, ..., 4, 0] (spec §1.2).
std::vector<int64_t> V4Ratios(int64_t layers, int64_t first_two) {
  std::vector<int64_t> r = {first_two, first_two};
  for (int64_t i = 2; i < layers; ++i) r.push_back(i % 2 == 0 ? 4 : 128);
  r.push_back(0);  // MTP layer
  return r;
}

ModelConfig V4Flash() {
  ModelConfig c = V4Common();
  c.hidden_size = 4096;
  c.num_hidden_layers = 43;
  c.num_attention_heads = 64;
  c.q_lora_rank = 1024;
  c.o_groups = 8;
  c.n_routed_experts = 256;
  c.moe_intermediate_size = 2048;
  c.routed_scaling_factor = 1.5;
  c.index_topk = 512;
  c.compress_ratios = V4Ratios(43, 0);
  return c;
}

// DSpark of the V4-Flash-0731 config.json (spec §11.4), for a main stack of `layers`.
DsparkConfig DefaultDspark(int64_t layers, int64_t vocab_size) {
  DsparkConfig d;
  for (int64_t i = std::max<int64_t>(0, layers - 3); i < layers; ++i) {
    d.target_layer_ids.push_back(i);
  }
  d.num_blocks = static_cast<int64_t>(d.target_layer_ids.size());
  d.block_size = 5;
  d.markov_rank = 256;
  d.noise_token_id = std::min<int64_t>(128799, vocab_size - 1);
  return d;
}

ModelConfig V4Pro() {
  ModelConfig c = V4Common();
  c.hidden_size = 7168;
  c.num_hidden_layers = 61;
  c.num_attention_heads = 128;
  c.q_lora_rank = 1536;
  c.o_groups = 16;
  c.n_routed_experts = 384;
  c.moe_intermediate_size = 3072;
  c.routed_scaling_factor = 2.5;
  c.index_topk = 1024;
  c.compress_ratios = V4Ratios(61, 128);
  return c;
}

ModelConfig V32() {
  ModelConfig c;
  c.arch = Arch::kV32;
  c.weight_format = WeightFormat::kFp8;
  c.vocab_size = 129280;
  c.hidden_size = 7168;
  c.num_hidden_layers = 61;
  c.num_attention_heads = 128;
  c.q_lora_rank = 1536;
  c.qk_rope_head_dim = 64;
  c.max_position_embeddings = 163840;
  c.rope_theta = 10000;
  c.yarn = {.enabled = true, .factor = 40, .original_max_position_embeddings = 4096,
            .beta_fast = 32, .beta_slow = 1, .mscale = 1.0, .mscale_all_dim = 1.0};
  c.n_routed_experts = 256;
  c.n_shared_experts = 1;
  c.num_experts_per_tok = 8;
  c.moe_intermediate_size = 2048;
  c.routed_scaling_factor = 2.5;
  c.scoring_func = "sigmoid";
  c.index_n_heads = 64;
  c.index_head_dim = 128;
  c.index_topk = 2048;
  c.num_nextn_predict_layers = 1;
  c.kv_lora_rank = 512;
  c.qk_nope_head_dim = 128;
  c.v_head_dim = 128;
  c.intermediate_size = 18432;
  c.first_k_dense_replace = 3;
  c.n_group = 8;
  c.topk_group = 4;
  return c;
}

}  // namespace

ModelConfig WithDrafter(ModelConfig c, DraftFamily family) {
  DSV4_CHECK(c.arch == Arch::kV4);
  const int64_t L = c.num_hidden_layers;
  if (family == DraftFamily::kDspark) {
    if (c.dspark.num_blocks == 0) c.dspark = DefaultDspark(L, c.vocab_size);
    c.num_nextn_predict_layers = 1;
    c.compress_ratios.resize(static_cast<size_t>(L + c.dspark.num_blocks), 0);
    std::fill(c.compress_ratios.begin() + L, c.compress_ratios.end(), 0);
    return c;
  }
  c.dspark = DsparkConfig{};
  c.num_nextn_predict_layers = family == DraftFamily::kMtp ? 1 : 0;
  c.compress_ratios.resize(static_cast<size_t>(L + 1), 0);  // a main list of L gets the 0
  return c;
}

ModelConfig TinyV4Config() {
  ModelConfig c = V4Common();
  c.vocab_size = 512;
  c.hidden_size = 256;
  // SWA-only, CSA, HCA, CSA, HCA; hash MoE in layers 0-1; MTP layer SWA-only.
  c.num_hidden_layers = 5;
  c.compress_ratios = {0, 4, 128, 4, 128, 0};
  c.num_hash_layers = 2;
  c.num_attention_heads = 8;
  c.head_dim = 128;  // 64 FP8 dims + 64 RoPE dims
  c.q_lora_rank = 128;
  c.o_groups = 2;
  c.o_lora_rank = 128;
  c.sliding_window = 32;  // small so tests wrap the ring quickly
  c.max_position_embeddings = 65536;
  c.n_routed_experts = 8;
  c.num_experts_per_tok = 2;
  c.moe_intermediate_size = 128;
  c.index_n_heads = 4;
  c.index_head_dim = 128;
  c.index_topk = 8;  // small so the indexer really drops entries
  return c;
}

ModelConfig TinyV32Config() {
  ModelConfig c = V32();
  c.vocab_size = 512;
  c.hidden_size = 256;
  c.num_hidden_layers = 3;
  c.first_k_dense_replace = 1;
  c.num_attention_heads = 4;
  c.q_lora_rank = 128;
  c.kv_lora_rank = 128;
  c.qk_nope_head_dim = 64;
  c.v_head_dim = 64;
  c.intermediate_size = 256;
  c.moe_intermediate_size = 128;
  c.n_routed_experts = 8;
  c.num_experts_per_tok = 2;
  c.n_group = 2;
  c.topk_group = 1;
  c.index_n_heads = 4;
  c.index_head_dim = 128;
  c.index_topk = 16;
  c.max_position_embeddings = 65536;
  return c;
}

std::vector<std::string> PresetNames() {
  return {"v4-flash", "v4-flash-0731", "v4-pro", "v3.2", "v4-tiny", "v3.2-tiny"};
}

Result<ModelConfig> PresetConfig(std::string_view name) {
  if (name == "v4-flash") return V4Flash();
  if (name == "v4-flash-0731") return WithDrafter(V4Flash(), DraftFamily::kDspark);
  if (name == "v4-pro") return V4Pro();
  if (name == "v3.2") return V32();
  if (name == "v4-tiny" || name == kDefaultModelName) return TinyV4Config();
  if (name == "v3.2-tiny") return TinyV32Config();
  std::string valid;
  for (const auto& n : PresetNames()) valid += (valid.empty() ? "" : ", ") + n;
  return Status::NotFound("unknown model preset '" + std::string(name) + "' (valid: " + valid +
                          ")");
}

}  // namespace dsv4::checkpoint
