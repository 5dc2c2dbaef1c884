// DeepSeek-V4 weights prepared for the forward pass (spec §12): linears as kernel views over
// the checkpoint bytes (copied only where the mapping is misaligned), FP32-promoted copies of
// the parameters the reference keeps in FP32 (§3), and wo_a used as its BF16 dequantisation
// (§6.5).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/bf16.h"
#include "core/status.h"
#include "kernels/linear_weight.h"
#include "checkpoint/config.h"
#include "checkpoint/load_options.h"
#include "checkpoint/tensor.h"
#include "checkpoint/tensor_reader.h"
#include "models/common/linear_loader.h"

namespace dsv4::v4 {

using kernels::LinearWeight;

using checkpoint::WeightArena;

struct CompressorWeights {
  int64_t ratio = 0;        // m: 4 (overlapping, kappa 2) or 128
  int64_t width = 0;        // c: entry width (head_dim or index_head_dim)
  LinearWeight wkv;         // f32 [kappa*c, D]
  LinearWeight wgate;       // f32 [kappa*c, D]
  const float* ape = nullptr;    // f32 [m, kappa*c]
  const float* norm = nullptr;   // f32 [c]
};

struct IndexerWeights {
  LinearWeight wq_b;            // [n_heads * head_dim, q_lora]
  LinearWeight weights_proj;    // bf16 [n_heads, D]
  CompressorWeights compressor;
};

struct MhcWeights {
  LinearWeight fn;               // f32 [(2+hc)*hc, hc*D] (HC_head: [hc, hc*D])
  const float* base = nullptr;   // f32 [(2+hc)*hc]
  const float* scale = nullptr;  // f32 [3]
};

struct ExpertWeights {
  LinearWeight w1, w3, w2;  // [I, D], [I, D], [D, I]
};

struct LayerWeights {
  int64_t layer = 0;
  checkpoint::LayerKind kind = checkpoint::LayerKind::kSwa;
  const float* attn_norm = nullptr;  // f32 [D]
  const float* ffn_norm = nullptr;   // f32 [D]
  MhcWeights hc_attn, hc_ffn;
  const float* attn_sink = nullptr;  // f32 [H]
  // wo_a [G*R, H*d/G]: kFp8AsBf16 (or kBf16 when its scales do not allow that)
  LinearWeight wq_a, wq_b, wkv, wo_a, wo_b;
  const float* q_norm = nullptr;     // f32 [Q]
  const float* kv_norm = nullptr;    // f32 [d]
  CompressorWeights compressor;      // ratio 0 when the layer has none
  IndexerWeights indexer;            // CSA only
  LinearWeight gate;                 // f32 [E, D]
  const float* gate_bias = nullptr;  // f32 [E] (non-hash layers)
  const int32_t* tid2eid = nullptr;  // [vocab, top_k] (hash layers)
  std::vector<ExpertWeights> experts;  // [E]; another rank's (expert parallelism): empty
  bool has_shared = false;
  ExpertWeights shared;              // FP8 [I*n_shared, D] ...
};

struct ModelWeights {
  WeightArena arena;
  const BF16* embed = nullptr;  // bf16 [vocab, D]
  LinearWeight head;            // f32 [vocab, D]
  const float* norm = nullptr;  // f32 [D]
  MhcWeights hc_head;           // fn [hc, hc*D], base [hc], scale [1]
  std::vector<LayerWeights> layers;
};

// Loads and checks every main-stack tensor (the drafter is not loaded: draft_weights.h):
// DataLoss for a NaN or infinite value in a tensor it reads (options.check_finite). The source
// must outlive the result (views point into it).
Result<std::unique_ptr<ModelWeights>> LoadWeights(const checkpoint::ModelConfig& c,
                                                  const checkpoint::TensorSource& source,
                                                  const checkpoint::LoadOptions& options = {});

// The storages the dense linears and the routed experts may use (spec §4.6, §11.5), decided
// per tensor by the loader (checkpoint::AcceptedLinearFormats).
std::vector<models::LinearFormat> DenseFormats(const checkpoint::ModelConfig& c);
std::vector<models::LinearFormat> ExpertFormats(const checkpoint::ModelConfig& c);

// One full V4 block under `prefix` ("layers.3.", "mtp.0."): norms, mHC, attention (with the
// compressor and indexer its compress ratio asks for) and MoE (hash-routed for main layers
// below num_hash_layers). Errors name the tensor.
Result<LayerWeights> LoadBlock(models::LinearLoader& l, const checkpoint::ModelConfig& c,
                               const std::string& prefix, int64_t layer);
// HC_head parameters `<prefix>hc_head_{fn,base,scale}` (the main model's: prefix "").
Result<MhcWeights> LoadHcHead(models::LinearLoader& l, const checkpoint::ModelConfig& c,
                              const std::string& prefix);

}  // namespace dsv4::v4
