// DeepSeek-V3.2 weights prepared for the forward pass (spec §14.1b): linears as kernel views
// over the checkpoint bytes, each FP8 (F32 `weight_scale_inv` tile scales) or BF16 as its
// tensors say (a BF16 indexer wk in an FP8 checkpoint is fine), FP32-promoted copies
// of what the reference keeps in FP32 (norms, router, indexer weights_proj, lm_head), and
// kv_b_proj dequantised once to BF16 and split per head into the absorbed-MLA factors W_UK
// and W_UV (as the reference's decode path does with weight_dequant).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/bf16.h"
#include "core/status.h"
#include "kernels/linear_weight.h"
#include "checkpoint/config.h"
#include "checkpoint/load_options.h"
#include "checkpoint/tensor.h"
#include "checkpoint/tensor_reader.h"

namespace dsv4::v32 {

using kernels::LinearWeight;

using checkpoint::WeightArena;

// The DSA lightning indexer of one layer (spec §14.3).
struct IndexerWeights {
  LinearWeight wq_b;                // [nI*dI, Q]
  LinearWeight wk;                  // [dI, D]
  const float* k_norm_w = nullptr;  // f32 [dI] (LayerNorm weight)
  const float* k_norm_b = nullptr;  // f32 [dI] (LayerNorm bias)
  LinearWeight weights_proj;        // f32 [nI, D] (BF16 in the checkpoint, used in FP32)
};

// MLA of one layer (spec §14.2). H heads, nope/rope/v head dims, kv_lora latent.
struct AttentionWeights {
  LinearWeight q_a;                  // [Q, D]
  const float* q_a_norm = nullptr;   // f32 [Q]
  LinearWeight q_b;                  // [H*(nope+rope), Q]
  LinearWeight kv_a;                 // [kv_lora+rope, D]: latent ‖ RoPE key
  const float* kv_a_norm = nullptr;  // f32 [kv_lora]
  std::vector<LinearWeight> uk_t;    // per head bf16 [kv_lora, nope]: W_UK,hᵀ (q_nope -> latent)
  std::vector<LinearWeight> uv;      // per head bf16 [v, kv_lora]: W_UV,h (latent -> value)
  LinearWeight o_proj;               // [D, H*v]
  IndexerWeights indexer;
};

// A SwiGLU FFN: down(silu(gate x) * up x). Dense layers, routed and shared experts.
struct FfnWeights {
  LinearWeight gate, up, down;  // [I, D], [I, D], [D, I]
};

struct LayerWeights {
  int64_t layer = 0;
  bool dense = false;                     // dense FFN (layer < first_k_dense_replace) or MoE
  const float* input_norm = nullptr;      // f32 [D]
  const float* post_attn_norm = nullptr;  // f32 [D]
  AttentionWeights attn;
  FfnWeights ffn;                      // dense layers
  LinearWeight router;                 // f32 [E, D] (MoE layers)
  const float* router_bias = nullptr;  // f32 [E]: e_score_correction_bias
  std::vector<FfnWeights> experts;     // [E]; another rank's (expert parallelism): empty
  bool has_shared = false;
  FfnWeights shared;  // [I*n_shared, D] ...
};

struct ModelWeights {
  WeightArena arena;
  const BF16* embed = nullptr;  // bf16 [vocab, D]
  LinearWeight head;            // f32 [vocab, D] (lm_head)
  const float* norm = nullptr;  // f32 [D]
  std::vector<LayerWeights> layers;
};

// Loads and checks every main-stack tensor of a V3.2 checkpoint (the MTP layer is not
// loaded; under expert parallelism, options.expert_parallel, only this rank's routed experts:
// the others' tensors are never looked up). Errors name the tensor: NotFound when missing,
// InvalidArgument for a wrong dtype/shape (a linear's dtype: naming the formats accepted) or
// an FP8 linear whose in-features are not a multiple of 128, DataLoss for a NaN or infinite
// value in a tensor it reads (options.check_finite). The source must outlive the result
// (views point into it).
Result<std::unique_ptr<ModelWeights>> LoadWeights(const checkpoint::ModelConfig& c,
                                                  const checkpoint::TensorSource& source,
                                                  const checkpoint::LoadOptions& options = {});

}  // namespace dsv4::v32
