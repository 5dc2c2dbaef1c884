// The plain reference of the April MTP module (spec §11.3), in the style of forward.h: the
// whole sequence at once from position 0, single-threaded, every rounding point of §3.
// For each position t: ê = RMSNorm(embed[token_{t+1}]; mtp.0.enorm), X̂_j = RMSNorm(X_t,j;
// mtp.0.hnorm), X0_j = bf16(e_proj(ê) + h_proj(X̂_j)) (two BF16 FP8-linear outputs added in
// FP32, as torch adds BF16 tensors); one block "mtp.0." with layer id num_hidden_layers at
// position t (SWA-only: its window is the module's own rows of positions t-W+1 .. t); then
// HC_head / norm with mtp.0.hc_head_* / mtp.0.norm and the shared head.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/status.h"
#include "checkpoint/config.h"
#include "checkpoint/tensor.h"

namespace dsv4::v4::reference {

// Draft logits FP32 [T, vocab]: row t is the distribution of token t+2. hidden: BF16 values
// [T, hc, D], the target's final streams X_t before HC_head (ForwardTrace's last layer
// streams); next_tokens [T]: token t+1 of each position. When `streams` is not null it
// receives the block's output streams, BF16 values [T, hc, D].
// Errors: CheckReferenceSupports's; InvalidArgument for a token outside the vocabulary or
// a hidden size other than T·hc·D; the weights' (NotFound / InvalidArgument naming the tensor).
Result<std::vector<float>> MtpForward(const checkpoint::ModelConfig& c,
                                      const checkpoint::TensorSource& w,
                                      std::span<const float> hidden,
                                      std::span<const int32_t> next_tokens,
                                      std::vector<float>* streams = nullptr);

}  // namespace dsv4::v4::reference
