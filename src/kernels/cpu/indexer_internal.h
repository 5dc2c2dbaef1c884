// Internal interface between the indexer front ends (indexer.cpp, indexer_fp8.cpp: query
// preparation, threading, top-k, ISA dispatch) and their per-ISA score loops. Not part of the
// kernels API.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "core/grow.h"
#include "kernels/cpu/aligned_vector.h"
#include "kernels/cpu/indexer.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/per_thread.h"
#include "kernels/cpu/streaming_topk.h"

namespace dsv4::kernels::internal {

// The query in FP32, and in BF16 pairs (StoreQueryPairs) for the BF16 dot path.
struct IndexerPrepared {
  const float* q = nullptr;  // [heads, dim]
  const float* w = nullptr;  // [heads]
  int64_t heads = 0;
  int64_t dim = 0;
  const uint32_t* q_pairs = nullptr;  // [heads, dim/16, 8] (StoreQueryPairs)
  // Unbiased exponent range of the nonzero q values (the exponent field minus 127); min >
  // max when q is all zero. Subnormal values set min to -1000 and NaN / inf set max to 1000,
  // which rules the BF16 path out (VDPBF16PS flushes subnormal inputs).
  int q_exp_min = 0;
  int q_exp_max = 0;
  int w_exp_min = 0;  // the same for the head weights
  int w_exp_max = 0;
  int64_t visible = 0;  // the query sees keys [0, visible): no key past it is scored for it
};

// A prepared query's pairs (IndexerPrepared::q_pairs, IndexerFp8Prepared::q_pairs): per
// head and group of 16 values, pair l = [value 8 + l | value l] (BF16 words, kernels/cpu/simd.h
// pair layout) at slot 4 * (l % 2) + l / 2, even l first (the VDPBF16PS tile's query chunks,
// indexer_bf16_tile.h). bits(i): the BF16 word of value i of n.
template <class Bits>
void StoreQueryPairs(int64_t n, const Bits& bits, uint32_t* pairs) {
  for (int64_t g = 0; g < n / 16; ++g) {
    for (int64_t l = 0; l < 8; ++l) {
      pairs[g * 8 + 4 * (l % 2) + l / 2] =
          static_cast<uint32_t>(bits(g * 16 + 8 + l)) | static_cast<uint32_t>(bits(g * 16 + l)) << 16;
    }
  }
}

// The V3.2 scan's query (indexer_fp8.h) decoded once per call: FP32 code values, and BF16
// pair layout (kernels/cpu/simd.h) for the VDPBF16PS path (E4M3 values are exact in BF16).
struct IndexerFp8Prepared {
  const float* q = nullptr;  // [heads, dim]: E4M3ToF32 of the codes
  const float* w = nullptr;  // [heads]
  int64_t heads = 0;
  int64_t dim = 0;
  const uint32_t* q_pairs = nullptr;  // [heads, dim/16, 8] (StoreQueryPairs)
  int64_t visible = 0;  // the query sees keys [0, visible): no key past it is scored for it
};

// One pool thread's scratch of the indexer scans, FP4 and FP8 keys (part of
// kernels::Workspace). The tiles start on a cache line: every tile register is a full-width
// store and load, and split lines cost the one-thread V4 scan 2-5% (measured).
struct IndexerThreadScratch {
  std::vector<float> key;         // scalar: one decoded key FP32 [dim]
  AlignedVector<float> kb;        // a decoded tile FP32 [dim, tile]
  AlignedVector<uint16_t> kb16;   // VDPBF16PS: a decoded tile, BF16 words [dim, 16]
};

// The indexer scans' part of kernels::Workspace (grow-only, core/grow.h).
struct IndexerScratch {
  std::vector<float> q;           // the queries decoded [queries, heads, dim]
  std::vector<float> w;           // their head weights [queries, heads]
  std::vector<uint32_t> q_pairs;  // the queries in pair layout [queries, heads, dim/16, 8]
  std::vector<IndexerPrepared> prepared;         // [queries] (the FP4 scan)
  std::vector<IndexerFp8Prepared> prepared_fp8;  // [queries] (the FP8 scan)
  PerThread<IndexerThreadScratch> threads;
};

// The buffers of `count` prepared queries of heads x dim (grown only).
struct QueryBuffers {
  float* q;         // [count, heads, dim]
  float* w;         // [count, heads]
  uint32_t* pairs;  // [count, heads, dim/16, 8]
};
inline QueryBuffers GrowQueryBuffers(IndexerScratch* b, int64_t count, int64_t heads,
                                     int64_t dim) {
  return {GrowTo(b->q, count * heads * dim), GrowTo(b->w, count * heads),
          GrowTo(b->q_pairs, count * heads * dim / 2)};
}

// A group scan's score loop over prepared queries (IndexerScoresScalar and the like below).
template <class Prepared>
using ScoreLoop = void (*)(std::span<const Prepared>, const PagedRows&, int64_t, int64_t, float*,
                           int64_t, IndexerThreadScratch*);

// The front ends' two scans, shared by the FP4 and FP8 keys. scores[i] for keys [0, n) of
// one query:
template <class Prepared>
void ScanScores(ThreadPool& pool, const Prepared& q, ScoreLoop<Prepared> fn,
                const PagedRows& keys, int64_t n, float* scores, IndexerScratch* buffers) {
  buffers->threads.Reserve(pool);
  pool.ParallelForWithThread(n, GrainForWork(q.heads * q.dim),
                             [&](int64_t begin, int64_t end, int t) {
                               for (int64_t b = begin; b < end; b += kScanChunk) {
                                 fn({&q, 1}, keys, b, std::min(end, b + kScanChunk), scores + b,
                                    0, &buffers->threads[t]);
                               }
                             });
}
// and each query's top-k of its visible keys (ScanTopK), the key range split once.
template <class Prepared>
void ScanGroupTopK(ThreadPool& pool, std::span<const Prepared> qs,
                   std::span<const int64_t> visible, ScoreLoop<Prepared> fn,
                   const PagedRows& keys, int64_t k, IndexerScratch* buffers, ScanScratch* scan,
                   std::vector<int64_t>* selected) {
  buffers->threads.Reserve(pool);
  const int64_t work = static_cast<int64_t>(qs.size()) * qs[0].heads * qs[0].dim;
  ScanTopK(
      pool, visible, k, GrainForWork(work),
      [&](int64_t begin, int64_t end, float* scores, int t) {
        fn(qs, keys, begin, end, scores, kScanChunk, &buffers->threads[t]);
      },
      scan, selected);
}

// The keys of [t0, t0 + count) (a tile) that a query seeing [0, visible) scores: 0 when it
// sees none of them.
inline int64_t TileKeysSeen(int64_t visible, int64_t t0, int64_t count) {
  return std::max<int64_t>(0, std::min(count, visible - t0));
}

// A group scan's score loop: for every query j of qs, scores[j * stride + i - begin] for the
// keys i in [begin, min(end, qs[j].visible)); each key tile is decoded once for all of them
// and scored per query exactly as for that query alone. scratch: the running thread's.
void IndexerScoresScalar(std::span<const IndexerPrepared> qs, const PagedRows& keys,
                         int64_t begin, int64_t end, float* scores, int64_t stride,
                         IndexerThreadScratch* scratch);
void IndexerScoresAvx2(std::span<const IndexerPrepared> qs, const PagedRows& keys, int64_t begin,
                       int64_t end, float* scores, int64_t stride, IndexerThreadScratch* scratch);
void IndexerScoresAvx512(std::span<const IndexerPrepared> qs, const PagedRows& keys,
                         int64_t begin, int64_t end, float* scores, int64_t stride,
                         IndexerThreadScratch* scratch);
// VDPBF16PS for every (tile, query) whose products and sums stay FP32-normal (then exact, so
// the canonical bits); the others take the IndexerScoresAvx512 arithmetic.
void IndexerScoresAvx512Bf16(std::span<const IndexerPrepared> qs, const PagedRows& keys,
                             int64_t begin, int64_t end, float* scores, int64_t stride,
                             IndexerThreadScratch* scratch);

}  // namespace dsv4::kernels::internal
