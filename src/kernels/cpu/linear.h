// Threaded linears with the semantics of kernels/ref/linear_ref.h, on the instruction set
// kernels/cpu/isa.h picks (scalar, AVX2, AVX-512, AVX-512 + BF16 dot), all giving the same
// bits. Every dot product uses one canonical FP32 order (see Dot8 below and
// kernels/cpu/simd.h), which does not depend on the number of rows, threads or the ISA, so
// results are batch-invariant and deterministic. Quantised weights (FP8 128x128 blocks, FP4
// per 32) are decoded in registers; with several input rows each weight tile is decoded once
// and read by every row. Output rows are split over the pool in tiles of 8-16.
#pragma once

#include <cstdint>

#include "core/bf16.h"
#include "core/thread_pool.h"
#include "kernels/cpu/workspace.h"
#include "kernels/linear_weight.h"

namespace dsv4::kernels {

// Every call takes the caller's scratch `ws` (kernels/cpu/workspace.h), which it may grow.

// x BF16 [rows, w.in] -> y BF16 [rows, w.out]; kinds kFp8Block, kFp4Row32, kBf16.
void Linear(ThreadPool& pool, const LinearWeight& w, const BF16* x, int64_t rows, BF16* y,
            Workspace* ws);

// x FP32 [rows, w.in] -> y FP32 [rows, w.out]; kind kF32.
void LinearF32(ThreadPool& pool, const LinearWeight& w, const float* x, int64_t rows, float* y,
               Workspace* ws);

// x BF16 [rows, w.in] promoted to FP32 -> y FP32 [rows, w.out]; kind kF32 (compressor,
// router, head: BF16 activations against FP32-promoted weights, spec §3).
void LinearBf16InF32(ThreadPool& pool, const LinearWeight& w, const BF16* x, int64_t rows, float* y,
                     Workspace* ws);

// Whether Linear runs `w` at `rows` input rows on FP32 FMAs under the active ISA: the FP8 GEMM
// (linear_gemm_avx512.cpp) on AVX-512, and on AVX-512 BF16 CPUs whose FMAs outrun VDPBF16PS
// that GEMM (FP8 and BF16-valued weights) and the tiled MXFP4 one (linear_fp4_fma_avx512.cpp;
// when their inputs are in range). For benchmarks, which bound a kernel by its instructions'
// peak, and the front end's row blocks.
bool LinearRunsOnFmaGemm(const LinearWeight& w, int64_t rows);

// The canonical FP32 dot product of every kernel here (exposed for tests and reuse): element k
// goes to lane k mod 8, each lane adds its rounded products in ascending k from +0, and the
// lanes combine as ((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7)). The model's reference forward uses
// the same order (DotLanes8), which is what makes the fast path bit-identical to it.
float Dot8(const float* a, const float* b, int64_t n);

}  // namespace dsv4::kernels
