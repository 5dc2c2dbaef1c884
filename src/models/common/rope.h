// Rotary position embedding math shared by both architectures (spec §4.3, §14.2-§14.3): the
// FP32 inverse-frequency table with the YaRN frequency blend, the FP32 angle the reference
// forms, both pairings (interleaved for attention, half-split for the V3.2 indexer), and the
// YaRN softmax-scale factor V3.2 applies. Pure functions; thread-compatible.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/bf16.h"
#include "checkpoint/config.h"

namespace dsv4::models {

// YaRN correction range: pairs below `lo` keep their frequency, pairs above `hi` are divided
// by the factor, linear blend between. corr(b) = dim·ln(orig / (b·2π)) / (2·ln θ),
// lo = max(floor(corr(beta_fast)), 0), hi = min(ceil(corr(beta_slow)), dim − 1), hi += 0.001
// when they meet. (θ 160000 / factor 16 / orig 65536: 15, 25; θ 10000 / orig 4096: 10, 23.)
void YarnRange(int64_t rope_dim, double theta, const checkpoint::YarnConfig& yarn, double* lo, double* hi);

// FP32 [rope_dim / 2]: inv_k = 1 / θ^(2k / rope_dim) in FP32, blended with inv_k / factor by
// the YaRN ramp when `yarn.enabled` (as the reference's precompute_freqs_cis).
std::vector<float> RopeInvFreq(int64_t rope_dim, double theta, const checkpoint::YarnConfig& yarn);

// YaRN attention-magnitude factor: 0.1·mscale_all_dim·ln(factor) + 1 when `yarn.enabled`,
// factor > 1 and mscale_all_dim != 0, else 1. V3.2 multiplies its softmax scale by its
// square (1.36889² for factor 40); V4 never uses it (spec §4.3).
double YarnMscale(const checkpoint::YarnConfig& yarn);

// Rotation of pairs (x[2k], x[2k+1]) by angle fp32(pos)·inv[k], the angle rounded to FP32 as
// the reference's table; FP32 math, BF16 result in place; `inverse` negates the angle.
// x: BF16 [2 · inv.size()].
void ApplyRopeInterleaved(std::span<const float> inv, BF16* x, int64_t pos, bool inverse);

// The cos and sin ApplyRopeInterleaved rotates by at `pos`: c, s FP32 [inv.size()]. With
// them, ApplyRopeInterleavedCs rotates any number of heads at one position with the bits of
// ApplyRopeInterleaved (the same values, the same FP32 math) without recomputing them.
void RopeCosSin(std::span<const float> inv, int64_t pos, float* c, float* s);
void ApplyRopeInterleavedCs(const float* c, const float* s, size_t pairs, BF16* x, bool inverse);

// The same rotation with the half-split pairing (x[k], x[k + n/2]), n = 2 · inv.size()
// (the corrected V3.2 indexer, spec §14.3 step 2). x: BF16 [n].
void ApplyRopeHalfSplit(std::span<const float> inv, BF16* x, int64_t pos);

}  // namespace dsv4::models
