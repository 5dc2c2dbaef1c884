// Internal interface between the FP8 indexer front end (indexer_fp8.cpp: query preparation,
// threading, top-k, ISA dispatch, the scalar loop) and its per-ISA score loops. Not part of
// the kernels API.
#pragma once

#include <cstdint>

#include "kernels/cpu/indexer_fp8.h"
#include "kernels/cpu/indexer_internal.h"  // IndexerThreadScratch

namespace dsv4::kernels::internal {

// The query decoded once per call: FP32 code values, and BF16 pair layout (kernels/cpu/simd.h)
// for the VDPBF16PS path (E4M3 values are exact in BF16).
struct IndexerFp8Prepared {
  const float* q = nullptr;  // [heads, dim]: E4M3ToF32 of the codes
  const float* w = nullptr;  // [heads]
  int64_t heads = 0;
  int64_t dim = 0;
  const uint32_t* q_pairs = nullptr;  // [heads, dim/16, 8]
};

// scores[i - begin] for keys i in [begin, end).
void IndexerFp8ScoresScalar(const IndexerFp8Prepared& q, const PagedRows& keys, int64_t begin,
                            int64_t end, float* scores, IndexerThreadScratch* scratch);
void IndexerFp8ScoresAvx2(const IndexerFp8Prepared& q, const PagedRows& keys, int64_t begin,
                          int64_t end, float* scores, IndexerThreadScratch* scratch);
void IndexerFp8ScoresAvx512(const IndexerFp8Prepared& q, const PagedRows& keys, int64_t begin,
                            int64_t end, float* scores, IndexerThreadScratch* scratch);
// VDPBF16PS: E4M3 x E4M3 products are exact, and every nonzero product and partial sum is a
// multiple of 2^-18 far below FP32's overflow, so FP32-normal: its two sequential FMAs per
// lane round exactly as the canonical multiply-then-add order, on every tile (no range check,
// unlike the FP4 scan's E8M0 scales).
void IndexerFp8ScoresAvx512Bf16(const IndexerFp8Prepared& q, const PagedRows& keys, int64_t begin,
                                int64_t end, float* scores, IndexerThreadScratch* scratch);

}  // namespace dsv4::kernels::internal
