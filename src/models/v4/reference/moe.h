// The MoE feed-forward sublayer (spec §10): sqrt-softplus router with bias-for-selection or
// hash routing, clamped SwiGLU routed experts weighted before w2, and a shared expert with the
// same clamp (spec §10.3: DeepSeek's current model.py; the first V4 release did not clamp it).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "checkpoint/config.h"
#include "checkpoint/tensor.h"
#include "models/v4/reference/weights.h"

namespace dsv4::v4::reference {

struct ExpertWeights {
  Linear w1;  // [I, D] gate
  Linear w3;  // [I, D] up
  Linear w2;  // [D, I] down
};

struct MoeWeights {
  bool hash = false;             // layer < num_hash_layers: experts from tid2eid
  Linear gate;                   // kF32 [E, D]
  std::vector<float> bias;       // F32 [E] (non-hash layers)
  std::vector<int64_t> tid2eid;  // I64 [vocab, k] (hash layers), every id in [0, E)
  std::vector<ExpertWeights> experts;
  bool has_shared = false;
  ExpertWeights shared;  // [I·n_shared, D] / [D, I·n_shared]
};

// Loads "<prefix>ffn.*" of the block under `prefix` ("layers.3.", "mtp.0."), layer id `layer`
// (hash routing below num_hash_layers). InvalidArgument if tid2eid holds an id outside [0, E).
Result<MoeWeights> LoadMoe(const checkpoint::ModelConfig& c, const checkpoint::TensorSource& w,
                           const std::string& prefix, int64_t layer);

struct Routing {
  std::vector<int64_t> experts;  // selection order (tid2eid row order / descending biased score)
  std::vector<float> weights;    // F32, g_e = σ_e / Σ_sel σ · routed_scaling_factor
};

// §10.1 for one token. x: BF16 values [D]; token: its id (hash layers).
// σ = sqrt(softplus(x·W_gᵀ)) in FP32 (softplus linear above 20); selection: tid2eid[token], or
// the top-k of σ + bias with ties toward the lower expert id; weights from the unbiased σ,
// normalised by their FP32 sum in selection order, then × routed_scaling_factor.
Routing Route(const checkpoint::ModelConfig& c, const MoeWeights& mw, std::span<const float> x,
              int32_t token);

// §10.2 / §10.3: a = w1(x), b = w3(x) as FP32; if limit > 0: b = clamp(b, −limit, limit),
// a = min(a, limit); h = weight · (SiLU(a) · b) in FP32; y = w2(bf16(h)). x: BF16 values [D].
// Returns BF16 values [D].
std::vector<float> ExpertForward(const ExpertWeights& e, std::span<const float> x, float weight,
                                 float limit);

// §10.4: y = bf16(Σ routed y_e + y_shared), summed in FP32 in ascending expert id (the order the
// reference's expert loop adds them), the shared expert last; every expert, the shared one
// included, clamped at c.swiglu_limit. x: BF16 values [D]. When
// `routing` is not null it receives the router's decision.
std::vector<float> MoeForward(const checkpoint::ModelConfig& c, const MoeWeights& mw,
                              std::span<const float> x, int32_t token, Routing* routing = nullptr);

}  // namespace dsv4::v4::reference
