// The compressor of CSA / HCA layers and of the CSA indexer (spec §7), computed the way the
// official reference's prefill does it: project every token, then pool entries 0..⌊T/m⌋−1
// directly from the token projections (no streaming state).
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

struct CompressorWeights {
  int64_t ratio = 0;        // m
  int64_t width = 0;        // c: 512 (head_dim) for attention, 128 (index_head_dim) for the indexer
  Linear wkv;               // kF32 [κc, D] (BF16 in the checkpoint, used in FP32)
  Linear wgate;             // kF32 [κc, D]
  std::vector<float> ape;   // F32 [m, κc]
  std::vector<float> norm;  // F32 [c] (BF16 promoted)

  // Overlapping windows (κ = 2) exactly when m == 4, as in the reference and the layout.
  bool overlap() const { return ratio == 4; }
  int64_t kappa() const { return overlap() ? 2 : 1; }
};

// Loads "<prefix>wkv.weight", "<prefix>wgate.weight", "<prefix>ape", "<prefix>norm.weight"
// (prefix e.g. "layers.1.attn.compressor.").
Result<CompressorWeights> LoadCompressor(const checkpoint::ModelConfig& c, const checkpoint::TensorSource& w,
                                         const std::string& prefix, int64_t ratio, int64_t width);

// §7.2 for every token: V_p = x_p·wkvᵀ and Z_p = x_p·wgateᵀ + ape[p mod m] in FP32.
// x: BF16 values [T, D]; v, z: F32 [T, κc].
void ProjectTokens(const CompressorWeights& cw, std::span<const float> x, int64_t num_tokens,
                   std::vector<float>* v, std::vector<float>* z);

// §7.3 / §7.4 pooling, FP32: entry i, feature f is Σ softmax(logits)·values over its candidate
// tokens, one softmax per feature (max, e = exp(z − max), sum, e / sum; sums ascending over the
// candidates in token order).
//  * overlap (κ = 2): candidates are the previous window 4i−4..4i−1 (logit Z_p[f], value V_p[f])
//    then the current window 4i..4i+3 (Z_p[c+f], V_p[c+f]); entry 0 has no previous window
//    (its −∞ logits have weight exactly 0, so they are left out).
//  * otherwise: the m tokens m·i..m·i+m−1 with Z_p[f], V_p[f].
// v, z: F32 [T, κc]. Returns F32 [⌊T/m⌋, c]; tokens past the last complete window are unused.
std::vector<float> PoolEntries(std::span<const float> v, std::span<const float> z,
                               int64_t num_tokens, int64_t ratio, int64_t width, bool overlap);

// What §7.5 step 3/4 does to a finished entry.
enum class EntryQuant {
  kFp8Nope,      // attention compressor: FP8 simulation of dims [0, c − rope_dim), block 64
  kHadamardFp4,  // indexer compressor: Hadamard of all c dims, then FP4 simulation (block 32)
};

struct EntryOptions {
  std::span<const float> inv_freq;  // the layer's RoPE table, F32 [rope_dim/2]
  float norm_eps = 1e-6f;
  EntryQuant quant = EntryQuant::kFp8Nope;
};

// §7.5 on one pooled entry i, in place: bf16 cast, RMSNorm(norm), RoPE on the last rope_dim
// dims at position m·i, then the quantisation of `quant`. entry: F32 [c] in, BF16 values out.
void FinishEntry(std::span<float> entry, int64_t index, const CompressorWeights& cw,
                 const EntryOptions& o);

// Every complete entry of a T-token prefill: ProjectTokens, PoolEntries, FinishEntry.
// x: BF16 values [T, D]. Returns BF16 values [⌊T/m⌋, c].
std::vector<float> CompressEntries(const CompressorWeights& cw, std::span<const float> x,
                                   int64_t num_tokens, const EntryOptions& o);

}  // namespace dsv4::v4::reference
