// Internal interface between the indexer front end (indexer.cpp: query preparation,
// threading, top-k, ISA dispatch) and its per-ISA score loops. Not part of the kernels API.
#pragma once

#include <cstdint>

#include "kernels/cpu/indexer.h"

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

// scores[i - begin] for keys i in [begin, end).
void IndexerScoresScalar(const IndexerPrepared& q, const PagedRows& keys, int64_t begin,
                         int64_t end, float* scores);
void IndexerScoresAvx2(const IndexerPrepared& q, const PagedRows& keys, int64_t begin, int64_t end,
                       float* scores);
void IndexerScoresAvx512(const IndexerPrepared& q, const PagedRows& keys, int64_t begin,
                         int64_t end, float* scores);
// VDPBF16PS for every tile whose products and sums stay FP32-normal (then exact, so the
// canonical bits); the other tiles take the IndexerScoresAvx512 loop.
void IndexerScoresAvx512Bf16(const IndexerPrepared& q, const PagedRows& keys, int64_t begin,
                             int64_t end, float* scores);

}  // namespace dsv4::kernels::internal
