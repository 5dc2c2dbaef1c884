// The machine limits a kernel's roofline bound is made of, measured on this machine in the
// run that measures the kernel: the read bandwidth of a streaming pass over a buffer far
// larger than the caches, and the arithmetic peak of the instruction mix the kernels use
// (FP32 multiply then add, the canonical dot order), plus FMA and int8 VNNI peaks and the
// FMA rate of a GEMM loop fed from L1 for reference. All on every thread of the pool, with
// the ISA the kernels use. Used by bench/kernel_bench (per kernel) and `dsv4 bench decode`
// (per layer, decode_bound.h).
// Not thread-safe against other work on the pool: the figures are only meaningful on an
// otherwise idle pool.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/thread_pool.h"
#include "kernels/cpu/isa.h"

namespace dsv4::bench {

struct MachineLimits {
  double read_bytes_per_s = 0;  // streaming read, all threads
  double muladd_flops = 0;      // FP32 mul + add (2 flops per pair), all threads
  double fma_flops = 0;         // FP32 FMA (2 flops), all threads
  double bf16_flops = 0;        // VDPBF16PS (2 flops per multiply-add); 0 if absent
  double vnni_ops = 0;          // int8 multiply-adds per s (vpdpbusd), all threads; 0 if absent
  double fma_l1_flops = 0;      // FP32 FMA with its operands from L1 in the FMA GEMMs' register
                                // blocking (MeasureL1FmaPeak), all threads; 0 without AVX-512
};

// Which arithmetic peak bounds a kernel: the instructions its inner loop uses.
enum class Peak { kMulAdd, kFma, kBf16Dot };

// Bytes read per second by one pass over `bytes` (split over the pool) with `isa`'s loads
// (kAvx512Bf16 reads as kAvx512).
double MeasureReadBandwidth(ThreadPool& pool, const uint8_t* data, int64_t bytes, kernels::Isa isa);
// Flops per second of `iters` rounds of independent mul+add chains on every thread.
double MeasureMulAddPeak(ThreadPool& pool, int64_t iters, kernels::Isa isa);
double MeasureFmaPeak(ThreadPool& pool, int64_t iters, kernels::Isa isa);
double MeasureVnniPeak(ThreadPool& pool, int64_t iters);
double MeasureBf16DotPeak(ThreadPool& pool, int64_t iters);
// Flops per second of `passes` passes of the FMA GEMMs' inner loop (3 rows x 8 accumulators,
// 11 loads per 24 FMAs) over a 16 KiB panel on every thread: the ceiling of a GEMM fed from
// L1, before any weight decode or lane combine (0 without AVX-512). Not a bound the ratios
// use: it shows how much of the FMA peak loads leave to a GEMM on this core.
double MeasureL1FmaPeak(ThreadPool& pool, int64_t passes);

// Best of 5 repetitions of each (the limits are maxima): the read over a 1 GiB buffer
// (allocated and freed here), the peaks over 20M rounds per thread. A few seconds.
MachineLimits MeasureLimits(ThreadPool& pool, kernels::Isa isa);

// The flops per second `peak` stands for in `m`. kBf16Dot falls back to the mul+add peak when
// the machine has no VDPBF16PS (bf16_flops == 0).
double PeakFlops(const MachineLimits& m, Peak peak);

// The faster of the exact-product multiply-adds `m` measured under `isa`: VDPBF16PS or FMA on
// kAvx512Bf16 (FMA where it outruns VDPBF16PS, as on Intel's Sapphire Rapids class, where the
// FP8 GEMM runs on it), FMA otherwise. A whole model's bound (`dsv4 bench layer`) uses it, so
// the bound stays below what any of its kernels could reach.
Peak BestExactPeak(const MachineLimits& m, kernels::Isa isa);

// "mul+add", "FMA", "VDPBF16PS".
std::string_view PeakName(Peak peak);

// max(bytes / bandwidth, flops / PeakFlops(m, peak)), in seconds.
double RooflineSeconds(const MachineLimits& m, double bytes, double flops, Peak peak);

}  // namespace dsv4::bench
