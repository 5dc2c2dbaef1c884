// Scalar numeric building blocks of the reference forward: BF16 rounding, RMS norms (§4.2),
// RoPE with YaRN (§4.3, Appendix A), the Hadamard rotation (§4.7) and the FP8/FP4 simulations
// (§4.4, §4.5) on FP32 arrays that hold BF16 values.
//
// Convention of the whole reference: activations live in std::vector<float>; where the official
// reference keeps a tensor in BF16 the floats hold exactly BF16-representable values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "checkpoint/config.h"

namespace dsv4::v4::reference {

// Rounds every element to BF16 (round-to-nearest-even), in place.
void RoundToBf16(std::span<float> x);

// §4.2 weighted RMSNorm, FP32 math: y = bf16(w · (x · (1/sqrt(mean(x²) + eps)))) with the sum of
// squares accumulated in ascending order. x: [n] (BF16 or FP32 values); weight: F32 [n].
// Returns BF16 values [n].
std::vector<float> RmsNorm(std::span<const float> x, std::span<const float> weight, float eps);

// §4.2 unweighted per-head query norm in BF16 arithmetic, as the reference's
// `q *= rsqrt(q.square().mean(-1) + eps)` on a BF16 tensor: sq_i = bf16(x_i²);
// mean = bf16((Σ sq_i)/n) with an FP32 sum in ascending i; r = bf16(1/sqrt(bf16(mean + eps)));
// x_i = bf16(x_i · r). x: BF16 values [n], in place.
void HeadRmsNormBf16(std::span<float> x, float eps);

// §4.7: y = bf16(n^-1/2 · Σ_j (−1)^popcount(i&j) x_j) (natural-order Sylvester matrix, no random
// signs). The FP32 sums are formed by the fast Walsh–Hadamard butterflies (a, b) -> (a + b,
// a − b) on pairs (i, i + h), i & h == 0, strides h = 1, 2, 4, ... ascending (log2 n roundings
// per output like the official butterfly kernel, whose stage order the spec leaves open; the
// engine's order, models/common/hadamard.h HadamardF32), then × n^-1/2 and one BF16 rounding.
// x: BF16 values [n], n a power of two; in place.
void HadamardBf16(std::span<float> x);

// §4.4 simulation path on BF16 values: blocks of `block`, power-of-two scales, E4M3 grid.
// x: BF16 values [n], n % block == 0; in place.
void Fp8SimulateBf16(std::span<float> x, size_t block);
// §4.5 FP4 simulation: blocks of 32, power-of-two scales, E2M1 grid. x: BF16 values [n].
void Fp4SimulateBf16(std::span<float> x);

// 1 / (1 + e^-x) in FP32.
float Sigmoid(float x);

// The engine's canonical FP32 dot-product order (documented in docs/architecture.md): element
// k accumulates into lane k mod 8, lanes combined as ((0+1)+(2+3))+((4+5)+(6+7)). Every dot
// product that the fast path computes with 8 lanes (linears, attention logits, indexer
// scores) uses it here too, written as a plain loop, so the two forwards agree bit for bit.
float DotLanes8(const float* a, const float* b, size_t n);

// ---- RoPE (§4.3) ----

// The YaRN correction range for rotary dimension `rope_dim` (64): lo = max(floor(corr(β_fast)),
// 0), hi = min(ceil(corr(β_slow)), rope_dim − 1) with corr(n) = rope_dim·ln(L/(2πn))/(2·ln θ)
// in double; hi += 0.001 when lo == hi. θ = 160000, L = 65536: lo 15, hi 25 (Appendix A).
struct YarnRange {
  double lo = 0;
  double hi = 0;
};
YarnRange YarnCorrectionRange(int64_t rope_dim, double theta, int64_t original_len,
                              double beta_fast, double beta_slow);

// Inverse frequencies inv'_k, F32 [rope_dim/2]: inv_k = 1 / θ^(fl32(2k)/rope_dim) in FP32 and,
// when original_len > 0 (YaRN), with ramp_k = clamp((k − lo)/(hi − lo), 0, 1) and
// smooth_k = 1 − ramp_k (FP32): inv'_k = (inv_k / factor)·(1 − smooth_k) + inv_k·smooth_k,
// the reference's operation order. No mscale anywhere (§4.3).
std::vector<float> RopeInvFreq(int64_t rope_dim, double theta, double factor, int64_t original_len,
                               double beta_fast, double beta_slow);

// The table used for everything in layer `layer` (§4.3): SWA-only layers (ratio 0) plain
// rope_theta without YaRN; layers with a compressor compress_rope_theta with YaRN (when the
// config enables it with original_max_position_embeddings > 0).
std::vector<float> LayerRopeInvFreq(const checkpoint::ModelConfig& c, int64_t layer);

// φ = fl32(fl32(pos) · inv_freq): the reference forms the angle as an FP32 product.
float RopeAngle(int64_t pos, float inv_freq);

// Interleaved (GPT-J) RoPE at `pos`: pair k = (x[2k], x[2k+1]) times e^{±iφ_k}, FP32 complex
// product (re = a·cos − b·sin, im = a·sin + b·cos), rounded to BF16. `inverse` uses the
// conjugate (−φ, §6.4). x: BF16 values [2·inv_freq.size()] (the rotated slice); in place.
void ApplyRope(std::span<float> x, std::span<const float> inv_freq, int64_t pos, bool inverse);

}  // namespace dsv4::v4::reference
