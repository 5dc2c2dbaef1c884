// The DSA lightning indexer of V3.2 (spec §14.3, corrected reference): per-token query and key
// preparation and the FP8 index scores that choose each query's top-k tokens.
#pragma once

#include <cstdint>
#include <span>

#include "core/bf16.h"
#include "core/thread_pool.h"

namespace dsv4::v32 {

// ε of the key LayerNorm (spec §14.3 step 1: the reference's LayerNorm default, not
// rms_norm_eps).
inline constexpr float kIndexerNormEps = 1e-6f;

// Turns one indexer head vector (query head or key) into its rotated form in place: RoPE on
// dims [0, 2·inv.size()) with the non-interleaved (half-split) pairing at `pos`, then the
// Hadamard rotation of all `dim` dims. x BF16 [dim].
void RotateIndexerVector(std::span<const float> inv, int64_t pos, BF16* x, int64_t dim);

// FP8-quantises a rotated query head with one power-of-two scale (act_quant over the whole
// head) into its code values, FP32 [dim] (unscaled E4M3 values); returns the scale.
float QuantizeIndexerQuery(const BF16* x, int64_t dim, float* codes);

// The per-head weight the score kernel multiplies in (spec §14.3 step 4 and the corrected
// reference): ((w · n_heads^-0.5) · q_scale) · dim^-0.5, FP32 in that order.
float IndexerHeadWeight(float w, float q_scale, int64_t n_heads, int64_t dim);

// Index scores of one query against n keys, FP32 (the reference's fp8_index kernel):
// I_s = k_scale[s] · Σ_h max(q_h · k_s, 0) · hw[h], with q_h · k_s the FP32 dot product of
// the code values, heads summed in ascending order. Keys in parallel; every score is
// computed the same way for any thread count.
// q: FP32 code values [heads, dim]; hw: FP32 [heads] (IndexerHeadWeight); k: FP32 code
// values [n, dim]; k_scale: FP32 [n]; scores: FP32 [n].
void IndexerScores(ThreadPool& pool, const float* q, const float* hw, const float* k,
                   const float* k_scale, int64_t n, int64_t heads, int64_t dim, float* scores);

}  // namespace dsv4::v32
