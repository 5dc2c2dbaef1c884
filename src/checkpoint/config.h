// ModelConfig: the validated architecture of a checkpoint, parsed from its Hugging Face
// config.json (spec §1 for DeepSeek-V4, §14.1b for DeepSeek-V3.2). Every dimension the
// engine uses comes from here; nothing hard-codes Flash or Pro sizes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "checkpoint/quant_config.h"
#include "core/status.h"

namespace dsv4::checkpoint {

enum class Arch { kV4, kV32 };
std::string_view ArchName(Arch a);  // "deepseek_v4" / "deepseek_v32"

// Attention type of one V4 layer, from its compress ratio (spec §1.2).
enum class LayerKind { kSwa, kCsa, kHca };
std::string_view LayerKindName(LayerKind k);  // "SWA", "CSA", "HCA"

// YaRN parameters (spec §4.3 for V4 compressed layers, §14.2 for V3.2).
struct YarnConfig {
  bool enabled = false;
  double factor = 1.0;
  int64_t original_max_position_embeddings = 0;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 1.0;          // V3.2 only (softmax-scale correction)
  double mscale_all_dim = 0.0;  // V3.2 only
};

// The speculative-decoding drafter a checkpoint declares (spec §11.3, §11.4).
enum class DraftFamily {
  kNone,    // no draft module
  kMtp,     // April release: one MTP layer `mtp.0` (num_nextn_predict_layers = 1)
  kDspark,  // V4-Flash-0731 / V4-Pro-0813: DSpark draft blocks `mtp.0` .. `mtp.{N-1}`
};
std::string_view DraftFamilyName(DraftFamily f);  // "none", "April MTP", "DSpark"

// DSpark parameters (config.json `dspark_*`, spec §11.4); num_blocks == 0 when the config has
// none. These configs still say num_nextn_predict_layers = 1; the block count comes from
// dspark_target_layer_ids, and compress_ratios carries one 0 per block.
struct DsparkConfig {
  int64_t num_blocks = 0;                 // draft blocks, = target_layer_ids.size() (3)
  int64_t block_size = 0;                 // tokens drafted per step: anchor + noise (5)
  int64_t noise_token_id = 0;             // fills the block after the anchor (128799)
  std::vector<int64_t> target_layer_ids;  // main layers feeding main_proj ([40, 41, 42])
  int64_t markov_rank = 0;                // R of the Markov head (256)
};

struct ModelConfig {
  Arch arch = Arch::kV4;
  WeightFormat weight_format = WeightFormat::kFp8;
  ModelOptQuant modelopt;

  // Shared by both architectures.
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;           // D
  int64_t num_hidden_layers = 0;     // main stack, without MTP
  int64_t num_attention_heads = 0;   // H
  int64_t q_lora_rank = 0;           // Q
  int64_t qk_rope_head_dim = 0;      // r (64)
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;       // V4: SWA-only layers; V3.2: every layer
  YarnConfig yarn;                   // V4: compressed layers; V3.2: every layer
  int64_t n_routed_experts = 0;
  int64_t n_shared_experts = 0;
  int64_t num_experts_per_tok = 0;
  int64_t moe_intermediate_size = 0;
  double routed_scaling_factor = 1.0;
  bool norm_topk_prob = true;
  std::string scoring_func;          // "sqrtsoftplus" (V4) / "sigmoid" (V3.2)
  int64_t index_n_heads = 0;
  int64_t index_head_dim = 0;
  int64_t index_topk = 0;
  int64_t num_nextn_predict_layers = 0;
  int64_t bos_token_id = 0;
  int64_t eos_token_id = 1;

  // DeepSeek-V4 only.
  int64_t head_dim = 0;              // d (512): K=V width, last qk_rope_head_dim dims rotated
  int64_t o_groups = 0;              // G
  int64_t o_lora_rank = 0;           // R
  int64_t sliding_window = 0;        // window ring slots (128)
  double compress_rope_theta = 0.0;
  // >= num_hidden_layers entries; [L] is the MTP layer, [L + b] DSpark block b (always 0)
  std::vector<int64_t> compress_ratios;
  int64_t num_hash_layers = 0;
  int64_t hc_mult = 0;
  int64_t hc_sinkhorn_iters = 0;
  double hc_eps = 1e-6;
  double swiglu_limit = 0.0;
  std::string expert_dtype;          // config.json `expert_dtype` as given ("fp4"); "" if absent
  DsparkConfig dspark;

  // DeepSeek-V3.2 only.
  int64_t kv_lora_rank = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t v_head_dim = 0;
  int64_t intermediate_size = 0;     // dense FFN layers
  int64_t first_k_dense_replace = 0;
  int64_t n_group = 0;
  int64_t topk_group = 0;

  // V4: non-RoPE dims of an attention vector (448 at head_dim 512).
  int64_t d_nope() const { return head_dim - qk_rope_head_dim; }
  // The drafter the config declares: kDspark when it has dspark_* keys, else kMtp when
  // num_nextn_predict_layers > 0, else kNone. Whether its tensors are present is the
  // checkpoint's business (Checkpoint::drafter).
  DraftFamily draft_family() const;
  // Layers of that drafter: 0, 1 (MTP) or dspark.num_blocks; layer ids L .. L + n - 1.
  int64_t num_draft_layers() const;
  // V4: compress ratio of layer `layer` (main layers, then the draft layers; L is always
  // accepted, as the MTP layer).
  int64_t ratio(int64_t layer) const;
  LayerKind layer_kind(int64_t layer) const;
  int64_t CountLayers(LayerKind k) const;  // main stack only
  bool is_hash_layer(int64_t layer) const { return layer < num_hash_layers; }
  // V3.2: whether layer `layer` has a dense FFN instead of MoE.
  bool is_dense_layer(int64_t layer) const { return layer < first_k_dense_replace; }
};

// Parses and validates a config.json object. `label` (usually the file path) prefixes every
// error, which names the field, the expected and the actual value.
Result<ModelConfig> ParseModelConfig(const nlohmann::json& j, std::string_view label);
// Reads <dir>/config.json (or the file itself if `path` is a file): at most
// kMaxConfigJsonBytes (16 MiB) and kDefaultMaxJsonDepth levels deep (ReadJsonFile's errors),
// then ParseModelConfig's.
Result<ModelConfig> LoadModelConfig(const std::filesystem::path& path);
// Checks the cross-field invariants a runnable model needs (also called by ParseModelConfig).
Status ValidateModelConfig(const ModelConfig& c, std::string_view label);
// The config.json a checkpoint of this config carries, with the official HF keys.
nlohmann::json ModelConfigToJson(const ModelConfig& c);

}  // namespace dsv4::checkpoint
