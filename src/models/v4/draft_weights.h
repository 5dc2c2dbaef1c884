// The weights of a DeepSeek-V4 checkpoint's drafter, for speculative decoding: the April MTP
// module (spec §11.3) or the DSpark draft blocks of V4-Flash-0731 / V4-Pro-0813 (§11.4).
// Loaded and shape-checked like the main model's (weights.h: the same block loader, the same
// kernel views). The MTP module runs in mtp.h (runner::MtpDrafter), DSpark's blocks in
// dspark.h (runner::DsparkDrafter). The embedding and the head are the main model's (ModelWeights::embed, ::head):
// neither layout stores its own.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "core/bf16.h"
#include "core/status.h"
#include "checkpoint/config.h"
#include "checkpoint/load_options.h"
#include "checkpoint/tensor.h"
#include "models/v4/weights.h"

namespace dsv4::v4 {

// April MTP (`mtp.0.*`): X0_j = e_proj(RMSNorm(e; enorm)) + h_proj(RMSNorm(X_j; hnorm)), then
// one full block (layer id L), HC_head, RMSNorm(norm), the shared head.
struct MtpWeights {
  LayerWeights block;                // layer id num_hidden_layers
  LinearWeight e_proj, h_proj;       // FP8 [D, D]
  const float* enorm = nullptr;      // f32 [D]
  const float* hnorm = nullptr;      // f32 [D]
  const float* norm = nullptr;       // f32 [D]
  MhcWeights hc_head;                // fn [hc, hc*D], base [hc], scale [1]
};

// DSpark (`mtp.0.*` .. `mtp.{N-1}.*`): main_x = RMSNorm(main_proj(h); main_norm) with h the
// target layers' hidden states concatenated; N full SWA-only blocks; the last block's
// HC_head, RMSNorm(norm) and the shared head give the base logits; a rank-R Markov
// correction and a confidence score per drafted token.
struct DsparkWeights {
  std::vector<LayerWeights> blocks;  // block b: layer id num_hidden_layers + b, kind kSwa
  LinearWeight main_proj;            // FP8 [D, T*D], T = dspark.target_layer_ids.size() (mtp.0)
  const float* main_norm = nullptr;  // f32 [D] (mtp.0)
  const float* norm = nullptr;       // f32 [D] (last block)
  MhcWeights hc_head;                // last block: fn [hc, hc*D], base [hc], scale [1]
  const BF16* markov_w1 = nullptr;   // bf16 [V, R]: row `prev` is the Markov state e
  LinearWeight markov_w2;            // bf16 [V, R]: logits += markov_w2 · e
  LinearWeight confidence;           // bf16 [1, D + R]: sigmoid(proj([x; e]))
};

// Exactly one of `mtp` / `dspark` is set, as `family` says; neither for kNone.
struct DraftWeights {
  checkpoint::DraftFamily family = checkpoint::DraftFamily::kNone;
  WeightArena arena;  // FP32 promotions and repacked copies the views point into
  std::optional<MtpWeights> mtp;
  std::optional<DsparkWeights> dspark;
};

// Loads the drafter `family` (Checkpoint::drafter: kNone, or c.draft_family() when its
// tensors are present) from `source`, which must outlive the result. kNone gives an empty
// DraftWeights. InvalidArgument when `family` is not the one `c` declares; errors of the
// tensors name them (NotFound when missing, InvalidArgument for a wrong dtype or shape).
Result<std::unique_ptr<DraftWeights>> LoadDraftWeights(const checkpoint::ModelConfig& c,
                                                       const checkpoint::TensorSource& source,
                                                       checkpoint::DraftFamily family,
                                                       const checkpoint::LoadOptions& options = {});

}  // namespace dsv4::v4
