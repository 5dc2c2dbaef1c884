// Scalar reference linears (spec §4.6): obviously correct, one output element at a time,
// ascending-k FP32 accumulation. The fast kernels in kernels/cpu are tested against these.
#pragma once

#include <cstdint>

#include "core/bf16.h"
#include "kernels/linear_weight.h"

namespace dsv4::kernels::ref {

// y[r, n] for r < rows: x BF16 [rows, w.in] -> y BF16 [rows, w.out].
// w.kind must be kFp8Block, kFp4Row32, kNvfp4Row16 (in its canonical order, so the fast
// kernels match it bit for bit), kFp8AsBf16 or kBf16; w.in must be a multiple of 128 for the
// quantised kinds.
void Linear(const LinearWeight& w, const BF16* x, int64_t rows, BF16* y);

// FP32 linear: x FP32 [rows, w.in] -> y FP32 [rows, w.out]; w.kind must be kF32.
void LinearF32(const LinearWeight& w, const float* x, int64_t rows, float* y);

}  // namespace dsv4::kernels::ref
