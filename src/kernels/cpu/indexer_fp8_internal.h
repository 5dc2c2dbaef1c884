// Internal interface between the FP8 indexer front end (indexer_fp8.cpp: query preparation,
// threading, top-k, ISA dispatch, the scalar loop) and its per-ISA score loops. Not part of
// the kernels API.
#pragma once

#include <cstdint>
#include <span>

#include "kernels/cpu/indexer_fp8.h"
#include "kernels/cpu/indexer_internal.h"  // IndexerThreadScratch

namespace dsv4::kernels::internal {

// A group scan's score loop (as the FP4 scan's, indexer_internal.h): for every query j of qs,
// scores[j * stride + i - begin] for the keys i in [begin, min(end, qs[j].visible)), each key
// tile decoded once for all of them.
void IndexerFp8ScoresScalar(std::span<const IndexerFp8Prepared> qs, const PagedRows& keys,
                            int64_t begin, int64_t end, float* scores, int64_t stride,
                            IndexerThreadScratch* scratch);
void IndexerFp8ScoresAvx2(std::span<const IndexerFp8Prepared> qs, const PagedRows& keys,
                          int64_t begin, int64_t end, float* scores, int64_t stride,
                          IndexerThreadScratch* scratch);
void IndexerFp8ScoresAvx512(std::span<const IndexerFp8Prepared> qs, const PagedRows& keys,
                            int64_t begin, int64_t end, float* scores, int64_t stride,
                            IndexerThreadScratch* scratch);
// VDPBF16PS: E4M3 x E4M3 products are exact, and every nonzero product and partial sum is a
// multiple of 2^-18 far below FP32's overflow, so FP32-normal: its two sequential FMAs per
// lane round exactly as the canonical multiply-then-add order, on every tile (no range check,
// unlike the FP4 scan's E8M0 scales).
void IndexerFp8ScoresAvx512Bf16(std::span<const IndexerFp8Prepared> qs, const PagedRows& keys,
                                int64_t begin, int64_t end, float* scores, int64_t stride,
                                IndexerThreadScratch* scratch);

}  // namespace dsv4::kernels::internal
