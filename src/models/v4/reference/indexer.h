// The lightning indexer of CSA layers (spec §8), whole-sequence: scores every visible
// (position t, compressed entry i) pair and keeps the top-k entries per position.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "checkpoint/config.h"
#include "checkpoint/tensor.h"
#include "models/v4/reference/compressor.h"
#include "models/v4/reference/weights.h"

namespace dsv4::v4::reference {

struct IndexerWeights {
  Linear wq_b;                   // kFp8 / kBf16 [n_heads·head_dim, Q]
  Linear weights_proj;           // kBf16 [n_heads, D]
  CompressorWeights compressor;  // m = 4 (overlapping), c = index_head_dim
};

// Loads "<prefix>attn.indexer.*" of the block under `prefix` ("layers.1.").
Result<IndexerWeights> LoadIndexer(const checkpoint::ModelConfig& c, const checkpoint::TensorSource& w,
                                   const std::string& prefix);

// Number of compressed entries a query at position t may use: ⌊(t+1)/m⌋ (§7.7).
int64_t NumVisibleEntries(int64_t t, int64_t ratio);

// §8 step 6 for one (t, i), in the reference's BF16 tensor precision:
// I = bf16( Σ_h bf16( ReLU(bf16(q_h · key)) · w_h ) ), each q_h·key an FP32 sum in ascending
// dims, the head sum FP32 in ascending h. q: BF16 values [n_heads, head_dim]; weights: BF16
// values [n_heads]; key: BF16 values [head_dim]. Returns a BF16 value.
float IndexScore(std::span<const float> q, std::span<const float> weights,
                 std::span<const float> key);

// Indices of the min(k, n) largest scores, ties broken toward the lower index, returned in
// ascending index order.
std::vector<int64_t> TopKIndices(std::span<const float> scores, int64_t k);

// Everything the indexer computes for a T-token prefill.
struct IndexerOutput {
  std::vector<float> keys;                     // BF16 values [⌊T/4⌋, head_dim] (§7.5)
  std::vector<std::vector<int64_t>> selected;  // per t: chosen entries, ascending
};

// §8 for every position. x: BF16 values [T, D] (after attn_norm); qr: BF16 values [T, Q] (the
// shared query latent, §6.1 step 1); inv_freq: the layer's RoPE table.
IndexerOutput RunIndexer(const checkpoint::ModelConfig& c, const IndexerWeights& iw,
                         std::span<const float> inv_freq, std::span<const float> x,
                         std::span<const float> qr, int64_t num_tokens);

}  // namespace dsv4::v4::reference
