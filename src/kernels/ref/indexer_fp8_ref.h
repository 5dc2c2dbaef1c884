// Scalar reference of the V3.2 FP8 indexer scan (kernels/cpu/indexer_fp8.h): the canonical
// score order written out plainly, on contiguous key rows. Slow; for tests.
#pragma once

#include <cstdint>

namespace dsv4::kernels::ref {

// scores FP32 [n]: I_i = (Σ_h max(q_h · k_i, 0) · w_h) · scale_i, where q_h · k_i is the
// canonical 8-lane FP32 dot of the E4M3 code values (element d in lane d mod 8, lanes
// summed in ascending d from +0, combined ((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7))), the head
// terms are added in ascending h from +0, every operation rounded to FP32.
// q: E4M3 codes [heads, dim] (dim % 8 == 0); w: FP32 [heads]; keys: [n, dim + 4] rows of dim
// E4M3 codes followed by the key's FP32 scale.
void IndexerScoresFp8(const uint8_t* q, const float* w, const uint8_t* keys, int64_t n,
                      int64_t heads, int64_t dim, float* scores);

}  // namespace dsv4::kernels::ref
