// The plain reference of DSpark's draft blocks (spec §11.4), in the style of forward.h and
// mtp.h: one draft step from scratch, single-threaded, every rounding point written out.
// Given the target-layer means h_t of the P committed positions (BF16 values [P, T*D]) and the
// anchor (the token at position P):
//   main_x_t = RMSNorm(main_proj(h_t); mtp.0.main_norm)  for the window positions
//   [max(0, P-W), P) (W = sliding_window: the only ones a block reads);
//   block input [anchor, noise x (S-1)] embedded and copied to the hc streams, positions
//   P .. P+S-1; for b = 0 .. N-1 the block "mtp.<b>." (layer id L+b) whose attention is
//   DsparkAttentionForward over the block's WindowKeys of main_x (at their positions);
//   the last block's HC_head / norm (mtp.<N-1>.) give x_i and, with the shared head, the
//   base logits; then left to right from prev = anchor: e_i = markov_w1[prev],
//   logits_i = base_i + bf16(markov_w2 · e_i), draft_i = argmax (lowest id on ties),
//   confidence_i = sigmoid(bf16(proj([x_i ; e_i]))), prev = draft_i.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/status.h"
#include "checkpoint/config.h"
#include "checkpoint/tensor.h"

namespace dsv4::v4::reference {

struct DsparkDraftResult {
  std::vector<float> base_logits;  // FP32 [S, vocab]: the head's, before the Markov term
  std::vector<float> logits;       // FP32 [S, vocab]: after it
  std::vector<int32_t> drafts;     // [S]: draft i is the token of position P + i + 1
  std::vector<float> confidence;   // [S]
};

// Errors: CheckReferenceSupports's; InvalidArgument for a config without DSpark, an anchor
// outside the vocabulary or a hidden size that is not whole rows of T*D; the weights'
// (NotFound / InvalidArgument naming the tensor).
Result<DsparkDraftResult> DsparkDraft(const checkpoint::ModelConfig& c,
                                      const checkpoint::TensorSource& w,
                                      std::span<const float> hidden, int32_t anchor);

// The target-layer means of a reference forward's layer trace (spec §11.4 step 1): for each
// position, after each layer of dspark.target_layer_ids, the mean of its hc streams (FP32 sum
// in stream order, divided by hc, rounded to BF16), concatenated. streams[l]: layer l's
// streams after the layer, BF16 values [P, hc, D]. Returns BF16 values [P, T*D].
std::vector<float> TargetLayerMeans(const checkpoint::ModelConfig& c,
                                    std::span<const std::vector<float>* const> streams);

}  // namespace dsv4::v4::reference
