// Threaded attention-side kernels with the semantics of kernels/ref/attention_ref.h (heads in
// parallel for attention, keys in parallel for the indexer; a fixed per-element reduction
// order, so results do not depend on thread count, batch or ISA).
#pragma once

#include <cstdint>
#include <vector>

#include "core/bf16.h"
#include "core/thread_pool.h"
#include "kernels/cpu/workspace.h"

namespace dsv4::kernels {

// Sink-augmented softmax attention of `heads` query heads over n shared K=V rows (spec §6.3):
// s_j = Dot8(q_h, kv_j) * scale, m = max_j s_j, o_h = Σ_j bf16(e^{s_j−m}) kv_j /
// (Σ_j e^{s_j−m} + e^{sink_h−m}), sums in ascending j, e^x = ExpF
// (kernels/ref/attention_exp_ref.h). q BF16 [heads, d]; kv FP32 [n, d] (n >= 1); sink FP32
// [heads]; out BF16 [heads, d]. ws: the caller's kernel scratch.
void SparseAttention(ThreadPool& pool, const BF16* q, const float* kv, int64_t n, const float* sink,
                     int64_t heads, int64_t d, float scale, BF16* out, Workspace* ws);

// The same over packed cache entries read in place (core/kv_entry.h layout: [d_nope E4M3]
// [d_nope/64 E8M0][rope_dim BF16][pad]; 584 B at 448 + 64), bit-identical to SparseAttention
// on the decoded rows, without a dense K/V copy: entries are decoded a few at a time into a
// per-thread tile of ws. entries [n]: pointers to the n entries (window rows, then selected
// ones).
void SparseAttentionPacked(ThreadPool& pool, const BF16* q, const uint8_t* const* entries,
                           int64_t n, const float* sink, int64_t heads, int64_t d_nope,
                           int64_t rope_dim, float scale, BF16* out, Workspace* ws);

void IndexerScores(ThreadPool& pool, const BF16* q, const BF16* w, const float* keys, int64_t n,
                   int64_t heads, int64_t dim, float* scores);

// Same contract as ref::TopK, O(n log k) with a bounded heap.
std::vector<int64_t> TopK(const float* scores, int64_t n, int64_t k);

}  // namespace dsv4::kernels
