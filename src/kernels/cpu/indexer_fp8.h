// DeepSeek-V3.2 lightning-indexer scan (DSA, spec §14.3 step 4: the reference's fp8_index)
// straight from the cache's FP8 keys (core/kv_entry.h layout: [dim E4M3 codes][FP32 scale],
// 132 B at dim 128), with the ReLU-weighted head sum fused and a streaming top-k, so no
// decoded key array and no full score array is ever materialised (160K keys per query at
// V3.2's full context, 1M in the benchmarks).
//
// The score of key i (the canonical order, which every ISA in kernels/cpu/isa.h and every
// thread count reproduce bit for bit; kernels::ref::IndexerScoresFp8 spells it out):
//   d_h  = Dot8(q_h, k_i): the canonical 8-lane FP32 dot (kernels::Dot8) of the E4M3 code
//          values (unscaled); every product is exact (4 x 4 significant bits, >= 2^-18)
//   t    = +0, then for h = 0, 1, ..., heads-1 in order: t = t + max(d_h, 0) * w_h
//          (FP32, the product rounded, then the sum rounded; max as std::max(d_h, 0.0f))
//   I_i  = t * scale_i (FP32).
// E4M3 code 0x7F / 0xFF (NaN) must not occur in q or the keys (the quantisers saturate at
// ±448 and never write them); the paths may disagree on them.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/kv_entry.h"  // IndexerKeyFp8Bytes
#include "core/thread_pool.h"
#include "kernels/cpu/indexer.h"  // PagedRows
#include "kernels/cpu/workspace.h"

namespace dsv4::kernels {

// One token's V3.2 indexer query.
struct IndexerQueryFp8 {
  const uint8_t* q = nullptr;  // E4M3 codes [heads, dim]: the FP8-quantised query heads
  const float* w = nullptr;    // FP32 [heads]: head weights (query scale and softmax folded in)
  int64_t heads = 0;
  int64_t dim = 0;  // a multiple of 16
};

// scores FP32 [n]: the scores of keys [0, n). keys: rows of IndexerKeyFp8Bytes(q.dim) bytes.
void IndexerScoresFp8(ThreadPool& pool, const IndexerQueryFp8& q, const PagedRows& keys, int64_t n,
                      float* scores, Workspace* ws);

// The indices of the min(k, n) best scores of keys [0, n) (higher score first, ties to the
// lower index: the contract of kernels::TopK), in ascending order, into *selected (its
// capacity is reused). Scores are computed and filtered a chunk at a time.
void IndexerTopKFp8(ThreadPool& pool, const IndexerQueryFp8& q, const PagedRows& keys, int64_t n,
                    int64_t k, std::vector<int64_t>* selected, Workspace* ws);

// The same for a group of queries over one key sequence, query j seeing keys [0, visible[j]):
// selected[j] (queries.size() vectors) is exactly IndexerTopKFp8(pool, queries[j], keys,
// visible[j], k, &selected[j], ws), each key tile read and decoded once for the whole group
// (kernels::IndexerTopKFp4Group). All queries have the same heads and dim.
void IndexerTopKFp8Group(ThreadPool& pool, std::span<const IndexerQueryFp8> queries,
                         std::span<const int64_t> visible, const PagedRows& keys, int64_t k,
                         std::vector<int64_t>* selected, Workspace* ws);

}  // namespace dsv4::kernels
