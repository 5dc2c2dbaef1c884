#include "bench/roofline.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <vector>

#include "core/elapsed.h"
#include "kernels/cpu/simd.h"

namespace dsv4::bench {
namespace {

constexpr int kL1FmaSteps = 32;  // L1FmaAvx512: 32 steps x 8 registers x 64 B = 16 KiB

// Sums a range with 8 independent vector accumulators (loads are the only work).
DSV4_TARGET_AVX512 float ReadAvx512(const uint8_t* p, int64_t bytes) {
  __m512 a[8];
  for (auto& v : a) v = _mm512_setzero_ps();
  const float* f = reinterpret_cast<const float*>(p);
  for (int64_t i = 0; i + 128 <= bytes / 4; i += 128) {
    for (int j = 0; j < 8; ++j) a[j] = _mm512_add_ps(a[j], _mm512_loadu_ps(f + i + 16 * j));
  }
  for (int j = 1; j < 8; ++j) a[0] = _mm512_add_ps(a[0], a[j]);
  return _mm512_reduce_add_ps(a[0]);
}
DSV4_TARGET_AVX2 float ReadAvx2(const uint8_t* p, int64_t bytes) {
  __m256 a[8];
  for (auto& v : a) v = _mm256_setzero_ps();
  const float* f = reinterpret_cast<const float*>(p);
  for (int64_t i = 0; i + 64 <= bytes / 4; i += 64) {
    for (int j = 0; j < 8; ++j) a[j] = _mm256_add_ps(a[j], _mm256_loadu_ps(f + i + 8 * j));
  }
  for (int j = 1; j < 8; ++j) a[0] = _mm256_add_ps(a[0], a[j]);
  float out[8];
  _mm256_storeu_ps(out, a[0]);
  return out[0];
}
float ReadScalar(const uint8_t* p, int64_t bytes) {
  uint64_t acc[4] = {0, 0, 0, 0};
  const uint64_t* u = reinterpret_cast<const uint64_t*>(p);
  for (int64_t i = 0; i + 4 <= bytes / 8; i += 4) {
    for (int j = 0; j < 4; ++j) acc[j] += u[i + j];
  }
  return static_cast<float>(acc[0] + acc[1] + acc[2] + acc[3]);
}

// 12 independent chains of x = x + x * a (a multiply, then an add: the kernels' instruction
// mix): 12 chains cover the mul + add latency, so the pipes, not latency, set the rate.
DSV4_TARGET_AVX512 float MulAddAvx512(int64_t iters) {
  __m512 x[12];
  for (int j = 0; j < 12; ++j) x[j] = _mm512_set1_ps(static_cast<float>(j));
  __m512 a = _mm512_set1_ps(1e-9f);
  __asm__("" : "+v"(a));  // opaque: GCC would otherwise fold the whole loop at compile time
  for (int64_t i = 0; i < iters; ++i) {
    for (int j = 0; j < 12; ++j) x[j] = _mm512_add_ps(x[j], _mm512_mul_ps(x[j], a));
  }
  for (int j = 1; j < 12; ++j) x[0] = _mm512_add_ps(x[0], x[j]);
  return _mm512_reduce_add_ps(x[0]);
}
// The FMA GEMMs' inner loop (kernels/cpu/linear_gemm_avx512.cpp's plain rows) with every
// operand from L1: 3 rows x 8 accumulators; per 8-input step 8 loads of a 16 KiB panel and 3
// broadcasts of 8 inputs per 24 FMAs; `passes` passes over the panel. What any FMA GEMM that
// keeps its decoded weights in L1 could reach on this core, before decode and combines.
DSV4_TARGET_AVX512 float L1FmaAvx512(int64_t passes) {
  constexpr int kSteps = kL1FmaSteps;
  alignas(64) float panel[kSteps * 8 * 16];
  alignas(64) float x[3][kSteps * 8];
  for (int i = 0; i < kSteps * 8 * 16; ++i) panel[i] = static_cast<float>(i % 7) * 1e-3f;
  for (int r = 0; r < 3; ++r) {
    for (int i = 0; i < kSteps * 8; ++i) x[r][i] = static_cast<float>((i + r) % 5) * 1e-3f;
  }
  __m512 a[3][8];
  for (auto& row : a) {
    for (__m512& v : row) v = _mm512_setzero_ps();
  }
  for (int64_t pass = 0; pass < passes; ++pass) {
    for (int st = 0; st < kSteps; ++st) {
      __m512 xb[3];
#pragma GCC unroll 3
      for (int r = 0; r < 3; ++r) xb[r] = _mm512_broadcast_f32x8(_mm256_load_ps(x[r] + st * 8));
#pragma GCC unroll 8
      for (int p = 0; p < 8; ++p) {
        __m512 w = _mm512_load_ps(panel + (st * 8 + p) * 16);
        __asm__("" : "+v"(w));  // one load per panel register, as the GEMMs
#pragma GCC unroll 3
        for (int r = 0; r < 3; ++r) a[r][p] = _mm512_fmadd_ps(w, xb[r], a[r][p]);
      }
    }
    __asm__ volatile("" ::: "memory");  // the panel is re-read every pass
  }
  __m512 sum = _mm512_setzero_ps();
  for (auto& row : a) {
    for (const __m512& v : row) sum = _mm512_add_ps(sum, v);
  }
  return _mm512_reduce_add_ps(sum);
}
DSV4_TARGET_AVX512 float FmaAvx512(int64_t iters) {
  __m512 x[12];
  for (int j = 0; j < 12; ++j) x[j] = _mm512_set1_ps(static_cast<float>(j));
  __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(1e-3f);
  __asm__("" : "+v"(a), "+v"(b));
  for (int64_t i = 0; i < iters; ++i) {
    for (int j = 0; j < 12; ++j) x[j] = _mm512_fmadd_ps(x[j], a, b);
  }
  for (int j = 1; j < 12; ++j) x[0] = _mm512_add_ps(x[0], x[j]);
  return _mm512_reduce_add_ps(x[0]);
}
DSV4_TARGET_AVX512 int VnniAvx512(int64_t iters) {
  __m512i x[12];
  for (int j = 0; j < 12; ++j) x[j] = _mm512_set1_epi32(j);
  __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);
  __asm__("" : "+v"(a), "+v"(b));
  for (int64_t i = 0; i < iters; ++i) {
    for (int j = 0; j < 12; ++j) x[j] = _mm512_dpbusd_epi32(x[j], a, b);
  }
  for (int j = 1; j < 12; ++j) x[0] = _mm512_add_epi32(x[0], x[j]);
  return _mm512_reduce_add_epi32(x[0]);
}
DSV4_TARGET_AVX512BF16 float Bf16DotAvx512(int64_t iters) {
  __m512 x[12];
  for (int j = 0; j < 12; ++j) x[j] = _mm512_set1_ps(static_cast<float>(j));
  __m512i a = _mm512_set1_epi16(0x3F80), b = _mm512_set1_epi16(0x2F80);  // 1.0, 2^-32
  __asm__("" : "+v"(a), "+v"(b));
  for (int64_t i = 0; i < iters; ++i) {
    for (int j = 0; j < 12; ++j) x[j] = kernels::simd::DotBf16(x[j], a, b);
  }
  for (int j = 1; j < 12; ++j) x[0] = _mm512_add_ps(x[0], x[j]);
  return _mm512_reduce_add_ps(x[0]);
}
DSV4_TARGET_AVX2 float MulAddAvx2(int64_t iters) {
  __m256 x[12];
  for (int j = 0; j < 12; ++j) x[j] = _mm256_set1_ps(static_cast<float>(j));
  __m256 a = _mm256_set1_ps(1e-9f);
  __asm__("" : "+x"(a));  // opaque: GCC would otherwise fold the whole loop at compile time
  for (int64_t i = 0; i < iters; ++i) {
    for (int j = 0; j < 12; ++j) x[j] = _mm256_add_ps(x[j], _mm256_mul_ps(x[j], a));
  }
  for (int j = 1; j < 12; ++j) x[0] = _mm256_add_ps(x[0], x[j]);
  float out[8];
  _mm256_storeu_ps(out, x[0]);
  return out[0];
}
__attribute__((target("avx2,fma"))) float FmaAvx2(int64_t iters) {
  __m256 x[12];
  for (int j = 0; j < 12; ++j) x[j] = _mm256_set1_ps(static_cast<float>(j));
  __m256 a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(1e-3f);
  __asm__("" : "+x"(a), "+x"(b));
  for (int64_t i = 0; i < iters; ++i) {
    for (int j = 0; j < 12; ++j) x[j] = _mm256_fmadd_ps(x[j], a, b);
  }
  for (int j = 1; j < 12; ++j) x[0] = _mm256_add_ps(x[0], x[j]);
  float out[8];
  _mm256_storeu_ps(out, x[0]);
  return out[0];
}

std::atomic<float> g_sink{0};

// Runs fn on every thread of the pool at once; returns wall seconds.
template <class Fn>
double OnAllThreads(ThreadPool& pool, Fn fn) {
  const auto t0 = std::chrono::steady_clock::now();
  pool.ParallelFor(pool.num_threads(), 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) g_sink.store(static_cast<float>(fn()));
  });
  return SecondsSince(t0);
}

}  // namespace

double MeasureReadBandwidth(ThreadPool& pool, const uint8_t* data, int64_t bytes,
                            kernels::Isa isa) {
  const int64_t parts = pool.num_threads();
  const int64_t part = bytes / parts / 4096 * 4096;
  // kAvx512Bf16 has the same loads as kAvx512 (not the scalar loop).
  const bool avx512 = isa == kernels::Isa::kAvx512 || isa == kernels::Isa::kAvx512Bf16;
  const auto t0 = std::chrono::steady_clock::now();
  pool.ParallelFor(parts, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const uint8_t* p = data + i * part;
      const float v = avx512                       ? ReadAvx512(p, part)
                      : isa == kernels::Isa::kAvx2 ? ReadAvx2(p, part)
                                                   : ReadScalar(p, part);
      g_sink.store(v);
    }
  });
  return static_cast<double>(part * parts) / SecondsSince(t0);
}

double MeasureMulAddPeak(ThreadPool& pool, int64_t iters, kernels::Isa isa) {
  const int lanes = isa == kernels::Isa::kAvx512 ? 16 : 8;
  const double s = OnAllThreads(
      pool, [&] { return isa == kernels::Isa::kAvx512 ? MulAddAvx512(iters) : MulAddAvx2(iters); });
  return 2.0 * 12 * lanes * static_cast<double>(iters) * pool.num_threads() / s;
}

double MeasureFmaPeak(ThreadPool& pool, int64_t iters, kernels::Isa isa) {
  const int lanes = isa == kernels::Isa::kAvx512 ? 16 : 8;
  const double s = OnAllThreads(
      pool, [&] { return isa == kernels::Isa::kAvx512 ? FmaAvx512(iters) : FmaAvx2(iters); });
  return 2.0 * 12 * lanes * static_cast<double>(iters) * pool.num_threads() / s;
}

double MeasureVnniPeak(ThreadPool& pool, int64_t iters) {
  if (!kernels::IsaSupported(kernels::Isa::kAvx512)) return 0;
  const double s = OnAllThreads(pool, [&] { return static_cast<float>(VnniAvx512(iters)); });
  return 64.0 * 12 * static_cast<double>(iters) * pool.num_threads() / s;
}

double MeasureBf16DotPeak(ThreadPool& pool, int64_t iters) {
  if (!kernels::IsaSupported(kernels::Isa::kAvx512Bf16)) return 0;
  const double s = OnAllThreads(pool, [&] { return Bf16DotAvx512(iters); });
  return 2.0 * 32 * 12 * static_cast<double>(iters) * pool.num_threads() / s;
}

double MeasureL1FmaPeak(ThreadPool& pool, int64_t passes) {
  if (!kernels::IsaSupported(kernels::Isa::kAvx512)) return 0;
  const double s = OnAllThreads(pool, [&] { return L1FmaAvx512(passes); });
  return 2.0 * 16 * 24 * kL1FmaSteps * static_cast<double>(passes) * pool.num_threads() / s;
}

MachineLimits MeasureLimits(ThreadPool& pool, kernels::Isa isa) {
  const kernels::Isa simd = isa == kernels::Isa::kScalar       ? kernels::Isa::kAvx2
                            : isa == kernels::Isa::kAvx512Bf16 ? kernels::Isa::kAvx512
                                                               : isa;
  MachineLimits m;
  const int64_t bytes = int64_t{1} << 30;  // 1 GiB: far past the caches
  std::vector<uint8_t> buffer(static_cast<size_t>(bytes), 1);
  for (int rep = 0; rep < 5; ++rep) {
    m.read_bytes_per_s =
        std::max(m.read_bytes_per_s, MeasureReadBandwidth(pool, buffer.data(), bytes, isa));
    m.muladd_flops = std::max(m.muladd_flops, MeasureMulAddPeak(pool, 20'000'000, simd));
    m.fma_flops = std::max(m.fma_flops, MeasureFmaPeak(pool, 20'000'000, simd));
    m.vnni_ops = std::max(m.vnni_ops, MeasureVnniPeak(pool, 20'000'000));
    m.bf16_flops = std::max(m.bf16_flops, MeasureBf16DotPeak(pool, 20'000'000));
    m.fma_l1_flops = std::max(m.fma_l1_flops, MeasureL1FmaPeak(pool, 100'000));
  }
  return m;
}

double PeakFlops(const MachineLimits& m, Peak peak) {
  return peak == Peak::kBf16Dot && m.bf16_flops > 0 ? m.bf16_flops
         : peak == Peak::kFma                       ? m.fma_flops
                                                    : m.muladd_flops;
}

Peak BestExactPeak(const MachineLimits& m, kernels::Isa isa) {
  return isa == kernels::Isa::kAvx512Bf16 && m.bf16_flops >= m.fma_flops ? Peak::kBf16Dot
                                                                         : Peak::kFma;
}

std::string_view PeakName(Peak peak) {
  switch (peak) {
    case Peak::kMulAdd:
      return "mul+add";
    case Peak::kFma:
      return "FMA";
    case Peak::kBf16Dot:
      return "VDPBF16PS";
  }
  return "?";
}

double RooflineSeconds(const MachineLimits& m, double bytes, double flops, Peak peak) {
  return std::max(bytes / m.read_bytes_per_s, flops / PeakFlops(m, peak));
}

}  // namespace dsv4::bench
