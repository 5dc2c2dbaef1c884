// One V4 block of the plain reference (spec §2 step 3) over a whole sequence from position 0:
// HC_pre -> attn_norm -> attention -> HC_post, HC_pre -> ffn_norm -> MoE -> HC_post, every
// position at once. The main forward (forward.h) runs it per layer ("layers.<l>."), the MTP
// reference (mtp.h) once on "mtp.0." with layer id num_hidden_layers, the DSpark reference
// (dspark.h) on "mtp.<b>." with its own attention (RunBlockWith).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "checkpoint/config.h"
#include "checkpoint/tensor.h"
#include "models/v4/reference/attention.h"
#include "models/v4/reference/mhc.h"

namespace dsv4::v4::reference {

// Intermediate results of one layer, for layer-by-layer comparison with the fast path.
struct LayerTrace {
  // Per position t: the compressed entries t attended to, ascending (CSA: the indexer's top-k;
  // HCA: every visible entry; SWA-only: empty).
  std::vector<std::vector<int64_t>> compressed;
  // Per position t: the routed experts in selection order and their weights (§10.1).
  std::vector<std::vector<int64_t>> experts;
  std::vector<std::vector<float>> expert_weights;
  std::vector<float> attn_out;  // BF16 values [T, D]: attention sublayer output (wo_b)
  std::vector<float> ffn_in;    // BF16 values [T, D]: MoE sublayer input (HC_pre, ffn_norm)
  std::vector<float> ffn_out;   // BF16 values [T, D]: MoE sublayer output
  std::vector<float> streams;   // BF16 values [T, hc, D]: residual streams after the layer
};
// The mHC options of `c`.
HcOptions HcOptionsOf(const checkpoint::ModelConfig& c);

// The block under tensor prefix `prefix` ("layers.3.", "mtp.0."), layer id `layer` (attention
// type, RoPE table, hash routing), over positions 0 .. T-1: streams BF16 values [T, hc, D],
// updated in place; tokens [T] route hash layers. `trace` may be null. Errors: the weights'
// (NotFound / InvalidArgument naming the tensor).
Status RunBlock(const checkpoint::ModelConfig& c, const checkpoint::TensorSource& w,
                const std::string& prefix, int64_t layer, std::span<const int32_t> tokens,
                const HcOptions& o, std::vector<float>* streams, LayerTrace* trace);

// RunBlock with another attention sublayer (DSpark's draft blocks, dspark.h): `attention`
// maps the attention input u (BF16 values [T, D], after HC_pre and attn_norm) to its output
// (BF16 values [T, D]) with the block's weights. `trace` may be null.
using AttentionFn = std::function<std::vector<float>(const AttentionWeights& aw,
                                                     std::span<const float> u)>;
Status RunBlockWith(const checkpoint::ModelConfig& c, const checkpoint::TensorSource& w,
                    const std::string& prefix, int64_t layer, std::span<const int32_t> tokens,
                    const HcOptions& o, const AttentionFn& attention, std::vector<float>* streams,
                    LayerTrace* trace);

// §2 steps 4-5 for every position: h = RMSNorm(HC_head(X; <prefix>hc_head_*); <prefix>norm),
// logits = h · headᵀ in FP32 with the shared head.weight. prefix "" is the main model's,
// "mtp.0." the MTP module's. streams: BF16 values [T, hc, D]. Returns FP32 [T, vocab]. When
// `normed` is not null it receives h, BF16 values [T, D].
Result<std::vector<float>> HeadLogits(const checkpoint::ModelConfig& c,
                                      const checkpoint::TensorSource& w, const std::string& prefix,
                                      std::span<const float> streams, const HcOptions& o,
                                      std::vector<float>* normed = nullptr);

}  // namespace dsv4::v4::reference
