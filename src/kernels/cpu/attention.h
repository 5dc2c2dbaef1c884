// Threaded attention-side kernels with the semantics of kernels/ref/attention_ref.h
// (heads in parallel for attention, keys in parallel for the indexer; fixed per-element
// reduction order, so results do not depend on thread count or batch).
#pragma once

#include <cstdint>
#include <vector>

#include "core/bf16.h"
#include "core/thread_pool.h"

namespace dsv4::kernels {

void SparseAttention(ThreadPool& pool, const BF16* q, const float* kv, int64_t n,
                     const float* sink, int64_t heads, int64_t d, float scale, BF16* out);

void IndexerScores(ThreadPool& pool, const BF16* q, const BF16* w, const float* keys, int64_t n,
                   int64_t heads, int64_t dim, float* scores);

// Same contract as ref::TopK, O(n log k) with a bounded heap.
std::vector<int64_t> TopK(const float* scores, int64_t n, int64_t k);

}  // namespace dsv4::kernels
