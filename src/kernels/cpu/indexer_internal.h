// Internal interface between the indexer front end (indexer.cpp: query preparation,
// threading, top-k, ISA dispatch) and its per-ISA score loops. Not part of the kernels API.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/cpu/indexer.h"
#include "kernels/cpu/per_thread.h"

namespace dsv4::kernels::internal {

// The query in FP32, and in BF16 pair layout (kernels/cpu/simd.h) for the BF16 dot path.
struct IndexerPrepared {
  const float* q = nullptr;  // [heads, dim]
  const float* w = nullptr;  // [heads]
  int64_t heads = 0;
  int64_t dim = 0;
  const uint32_t* q_pairs = nullptr;  // [heads, dim/16, 8]
  // Unbiased exponent range of the nonzero q values (the exponent field minus 127); min >
  // max when q is all zero. Subnormal values set min to -1000 and NaN / inf set max to 1000,
  // which rules the BF16 path out (VDPBF16PS flushes subnormal inputs).
  int q_exp_min = 0;
  int q_exp_max = 0;
};

// One pool thread's scratch of the indexer scans, FP4 and FP8 keys (part of
// kernels::Workspace).
struct IndexerThreadScratch {
  std::vector<float> key;      // scalar: one decoded key FP32 [dim]
  std::vector<float> kb;       // a decoded tile FP32 [dim, tile]
  std::vector<uint16_t> kb16;  // VDPBF16PS: a decoded tile, BF16 words [dim, 16]
};

// The indexer scans' part of kernels::Workspace.
struct IndexerScratch {
  std::vector<float> q, w;        // the query decoded [heads, dim], its head weights [heads]
  std::vector<uint32_t> q_pairs;  // the query in pair layout [heads, dim/16, 8]
  PerThread<IndexerThreadScratch> threads;
};

// scores[i - begin] for keys i in [begin, end); scratch: the running thread's.
void IndexerScoresScalar(const IndexerPrepared& q, const PagedRows& keys, int64_t begin,
                         int64_t end, float* scores, IndexerThreadScratch* scratch);
void IndexerScoresAvx2(const IndexerPrepared& q, const PagedRows& keys, int64_t begin, int64_t end,
                       float* scores, IndexerThreadScratch* scratch);
void IndexerScoresAvx512(const IndexerPrepared& q, const PagedRows& keys, int64_t begin,
                         int64_t end, float* scores, IndexerThreadScratch* scratch);
// VDPBF16PS for every tile whose products and sums stay FP32-normal (then exact, so the
// canonical bits); the other tiles take the IndexerScoresAvx512 loop.
void IndexerScoresAvx512Bf16(const IndexerPrepared& q, const PagedRows& keys, int64_t begin,
                             int64_t end, float* scores, IndexerThreadScratch* scratch);

}  // namespace dsv4::kernels::internal
