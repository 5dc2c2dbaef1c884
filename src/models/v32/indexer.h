// The DSA lightning indexer of V3.2 (spec §14.3, corrected reference): per-token query and key
// preparation. The FP8 index scores and each query's top-k are the fused scan over the
// cache's packed keys, kernels::IndexerTopKFp8 (kernels/cpu/indexer_fp8.h).
#pragma once

#include <cstdint>
#include <span>

#include "core/bf16.h"

namespace dsv4::v32 {

// ε of the key LayerNorm (spec §14.3 step 1: the reference's LayerNorm default, not
// rms_norm_eps).
inline constexpr float kIndexerNormEps = 1e-6f;

// Turns one indexer head vector (query head or key) into its rotated form in place: RoPE on
// dims [0, 2·inv.size()) with the non-interleaved (half-split) pairing at `pos`, then the
// Hadamard rotation of all `dim` dims. x BF16 [dim].
void RotateIndexerVector(std::span<const float> inv, int64_t pos, BF16* x, int64_t dim);

// FP8-quantises a rotated query head with one power-of-two scale (act_quant over the whole
// head) into E4M3 codes [dim]; returns the scale (the head is codes × scale).
float QuantizeIndexerQuery(const BF16* x, int64_t dim, uint8_t* codes);

// The per-head weight the score kernel multiplies in (spec §14.3 step 4 and the corrected
// reference): ((w · n_heads^-0.5) · q_scale) · dim^-0.5, FP32 in that order.
float IndexerHeadWeight(float w, float q_scale, int64_t n_heads, int64_t dim);

}  // namespace dsv4::v32
