// Lightning-indexer scan (spec §8 step 6) straight from the KV cache's FP4-packed keys
// (core/kv_entry.h layout: [dim/2 packed E2M1, low nibble first][dim/32 E8M0 scales],
// 68 B at dim 128), with the ReLU-weighted head sum fused and a streaming top-k, so no decoded
// key array and no full score array is ever materialised (1M keys at 1M context).
//
// Scores are bit-identical to kernels::IndexerScores on the decoded keys (and so to the
// reference forward): per head the canonical 8-lane dot (kernels::Dot8) of q_h and the key,
// relu(bf16(dot)), bf16(w_h * relu), summed over heads in ascending order, bf16 of the sum.
// Every ISA (kernels/cpu/isa.h) computes the same bits.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/bf16.h"
#include "core/thread_pool.h"
#include "kernels/cpu/workspace.h"

namespace dsv4::kernels {

// Rows of `row_bytes` bytes, `rows_per_page` to a page (the paged KV cache): row i is at
// pages[i / rows_per_page] + (i % rows_per_page) * row_bytes. Non-owning.
struct PagedRows {
  const uint8_t* const* pages = nullptr;
  int64_t rows_per_page = 0;
  int64_t row_bytes = 0;

  const uint8_t* Row(int64_t i) const {
    return pages[i / rows_per_page] + (i % rows_per_page) * row_bytes;
  }
};

// One token's indexer query.
struct IndexerQuery {
  const BF16* q = nullptr;  // [heads, dim]: FP4-simulated, Hadamard-rotated query heads
  const BF16* w = nullptr;  // [heads]: head weights, softmax scale folded in
  int64_t heads = 0;
  int64_t dim = 0;  // a multiple of 32
};

// scores FP32 [n]: the score of keys [0, n) (FP4-packed rows of dim/2 + dim/32 bytes).
void IndexerScoresFp4(ThreadPool& pool, const IndexerQuery& q, const PagedRows& keys, int64_t n,
                      float* scores, Workspace* ws);

// The indices of the min(k, n) best scores of keys [0, n) (higher score first, ties to the
// lower index: the contract of kernels::TopK), in ascending order, into *selected (its
// capacity is reused). Scores are computed and filtered tile by tile.
void IndexerTopKFp4(ThreadPool& pool, const IndexerQuery& q, const PagedRows& keys, int64_t n,
                    int64_t k, std::vector<int64_t>* selected, Workspace* ws);

// The same for a group of queries over one key sequence (the tokens of a prefill chunk), query
// j seeing keys [0, visible[j]): selected[j] (queries.size() vectors) is exactly
// IndexerTopKFp4(pool, queries[j], keys, visible[j], k, &selected[j], ws). Each key tile is
// read and decoded once for the whole group and the key range split over the pool once, so a
// group of G costs far less than G single scans (memory traffic, decoding, thread wake-ups).
// All queries have the same heads and dim.
void IndexerTopKFp4Group(ThreadPool& pool, std::span<const IndexerQuery> queries,
                         std::span<const int64_t> visible, const PagedRows& keys, int64_t k,
                         std::vector<int64_t>* selected, Workspace* ws);

}  // namespace dsv4::kernels
