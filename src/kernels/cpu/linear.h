// Threaded linears with the semantics of kernels/ref/linear_ref.h. Each weight row is decoded
// to FP32 once per call and reused for every input row; dot products use 8 interleaved FP32
// accumulators per block (a fixed order that does not depend on the number of rows or
// threads, so results are batch-invariant and deterministic).
#pragma once

#include <cstdint>

#include "core/bf16.h"
#include "core/thread_pool.h"
#include "kernels/linear_weight.h"

namespace dsv4::kernels {

// x BF16 [rows, w.in] -> y BF16 [rows, w.out]; kinds kFp8Block, kFp4Row32, kBf16.
void Linear(ThreadPool& pool, const LinearWeight& w, const BF16* x, int64_t rows, BF16* y);

// x FP32 [rows, w.in] -> y FP32 [rows, w.out]; kind kF32.
void LinearF32(ThreadPool& pool, const LinearWeight& w, const float* x, int64_t rows, float* y);

// x BF16 [rows, w.in] promoted to FP32 -> y FP32 [rows, w.out]; kind kF32 (compressor,
// router, head: BF16 activations against FP32-promoted weights, spec §3).
void LinearBf16InF32(ThreadPool& pool, const LinearWeight& w, const BF16* x, int64_t rows,
                     float* y);

// The 8-lane FP32 dot product used by every kernel here (exposed for tests and reuse).
float Dot8(const float* a, const float* b, int64_t n);

}  // namespace dsv4::kernels
