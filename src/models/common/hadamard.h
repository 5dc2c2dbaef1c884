// The Hadamard rotation of both forward passes (spec §4.7; V4's indexer and FP4 KV entries,
// V3.2's indexer): natural-order Sylvester matrix, FP32 inside, BF16 in place. The plain
// references keep their own copies (they check this one).
#pragma once

#include <cstdint>

#include "core/bf16.h"

namespace dsv4::models {

// y = x · Hᵀ · n^-1/2 in place on x BF16 [n]; n a power of two (checked). Computed as
// HadamardF32, then × n^-1/2 and one BF16 rounding: the order of both references, bit for
// bit. Allocates only for n > 1024.
void Hadamard(BF16* x, int64_t n);

// The unscaled transform v · Hᵀ in place on FP32 v [n] (n a power of two), as the fast
// Walsh–Hadamard transform: butterflies (a, b) -> (a + b, a - b) on pairs (i, i + h) with
// i & h == 0, for strides h = 1, 2, 4, ... n/2 in that order; O(n log n).
void HadamardF32(float* v, int64_t n);

// n^-1/2 as an FP32: float(1 / sqrt(double(n))). For every power of two n up to 2^30 this
// is the same float as 1.0f / sqrtf(float(n)) (the V3.2 reference's spelling; the tests
// check both).
float HadamardScale(int64_t n);

}  // namespace dsv4::models
