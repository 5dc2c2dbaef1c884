// Scalar references for the attention-side kernels (spec §6.3, §8).
#pragma once

#include <cstdint>
#include <vector>

#include "core/bf16.h"

namespace dsv4::kernels::ref {

// Sink-augmented softmax attention of H query heads over n shared K=V rows (spec §6.3):
// s_j = (q_h·kv_j)·scale (FP32), m = max_j s_j,
// o_h = Σ_j bf16(e^{s_j−m})·kv_j / (Σ_j e^{s_j−m} + e^{sink_h−m}) -> BF16, e^x = ExpF
// (kernels/ref/attention_exp_ref.h).
// q BF16 [H, d]; kv FP32 [n, d] (n >= 1); sink FP32 [H]; out BF16 [H, d].
void SparseAttention(const BF16* q, const float* kv, int64_t n, const float* sink, int64_t heads,
                     int64_t d, float scale, BF16* out);

// Lightning-indexer scores (spec §8 step 6) for n keys:
// I_i = bf16( Σ_h bf16( w_h · relu( bf16(q_h·k_i) ) ) ), FP32 accumulation, heads ascending.
// q BF16 [heads, dim]; w BF16 [heads]; keys FP32 [n, dim]; scores FP32 [n].
void IndexerScores(const BF16* q, const BF16* w, const float* keys, int64_t n, int64_t heads,
                   int64_t dim, float* scores);

// Indices of the min(k, n) largest scores, ties broken toward the lower index, returned in
// ascending index order.
std::vector<int64_t> TopK(const float* scores, int64_t n, int64_t k);

}  // namespace dsv4::kernels::ref
