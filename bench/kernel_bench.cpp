// dsv4_kernel_bench: the CPU kernels at DeepSeek-V4-Flash shapes (and the V3.2 indexer scan),
// each with its roofline bound max(bytes / read bandwidth, flops / peak), both measured at
// start-up in the same run (src/bench/roofline.h, shared with `dsv4 bench decode`); the peak
// is that of the instructions the kernel's inner loop uses on the ISA it runs (mul+add, FMA
// or VDPBF16PS). Counters: GB/s and FLOP/s
// achieved, bound_us, and roofline = bound / measured time (1.0 = at the bound). The last
// argument of each benchmark is the ISA (0 scalar, 1 AVX2, 2 AVX-512, 3 AVX-512 + BF16 dot);
// weights and keys are sized or rotated past the L3 cache so that they stream from memory as a
// real model's do.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench/roofline.h"
#include "core/bf16.h"
#include "core/fp8.h"
#include "core/rng.h"
#include "core/thread_pool.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/indexer.h"
#include "kernels/cpu/fp4_tiles.h"
#include "kernels/cpu/indexer_fp8.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/linear.h"

namespace dsv4::bench {
namespace {

using kernels::Isa;

// DSV4_BENCH_THREADS=N runs the kernels on N threads (default: every core); 1 gives a
// kernel's per-thread cost, which a loaded machine distorts less than a split's wall time.
ThreadPool& Pool() {
  static ThreadPool pool(std::getenv("DSV4_BENCH_THREADS") != nullptr
                             ? std::max(1, std::atoi(std::getenv("DSV4_BENCH_THREADS")))
                             : 0);
  return pool;
}
MachineLimits g_limits;

constexpr int64_t kStreamBytes = int64_t{256} << 20;  // data per benchmark: 8x the L3

// Forces the ISA of argument `index` for the benchmark; false (and a skip) if unsupported.
bool UseIsa(benchmark::State& state, int index) {
  const Isa isa = static_cast<Isa>(state.range(index));
  if (!kernels::IsaSupported(isa)) {
    state.SkipWithError("ISA not supported");
    return false;
  }
  kernels::SetIsaForTesting(isa);
  state.SetLabel(std::string(kernels::IsaName(isa)));
  return true;
}

void SetRoofline(benchmark::State& state, double bytes, double flops, Peak peak) {
  using benchmark::Counter;
  const double bound = RooflineSeconds(g_limits, bytes, flops, peak);
  state.counters["bound_us"] = bound * 1e6;
  state.counters["roofline"] = Counter(bound, Counter::kIsIterationInvariantRate);
  // Rates (shown as "x/s").
  state.counters["GB"] = Counter(bytes / 1e9, Counter::kIsIterationInvariantRate);
  state.counters["GFLOP"] = Counter(flops / 1e9, Counter::kIsIterationInvariantRate);
}

std::vector<uint8_t> RandomBytes(int64_t n, Rng& rng, uint8_t lo, uint8_t span) {
  std::vector<uint8_t> v(static_cast<size_t>(n));
  for (auto& b : v) b = static_cast<uint8_t>(lo + rng.Below(span));
  return v;
}

// ---------------------------------------------------------------------------------------
// Machine limits, as benchmarks of their own (the values the ratios use).

void BM_ReadBandwidth(benchmark::State& state) {
  std::vector<uint8_t> buf(static_cast<size_t>(int64_t{1} << 30), 1);
  double best = 0;
  for (auto _ : state) {
    best =
        std::max(best, MeasureReadBandwidth(Pool(), buf.data(), buf.size(), kernels::DetectIsa()));
  }
  state.counters["GB"] = benchmark::Counter(static_cast<double>(buf.size()) / 1e9,
                                            benchmark::Counter::kIsIterationInvariantRate);
  state.counters["best_GB/s"] = best / 1e9;
}
BENCHMARK(BM_ReadBandwidth)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(5);

void BM_Peak(benchmark::State& state) {
  // 0 mul+add, 1 FMA, 2 VNNI, 3 BF16 dot, 4 FMA fed from L1 (the GEMMs' loop, no bound)
  const int kind = static_cast<int>(state.range(0));
  const Isa best = kernels::DetectIsa();
  const Isa simd = best == Isa::kScalar       ? Isa::kAvx2
                   : best == Isa::kAvx512Bf16 ? Isa::kAvx512
                                              : best;
  double rate = 0;
  for (auto _ : state) {
    rate = std::max(rate, kind == 0   ? MeasureMulAddPeak(Pool(), 10'000'000, simd)
                          : kind == 1 ? MeasureFmaPeak(Pool(), 10'000'000, simd)
                          : kind == 2 ? MeasureVnniPeak(Pool(), 10'000'000)
                          : kind == 3 ? MeasureBf16DotPeak(Pool(), 10'000'000)
                                      : MeasureL1FmaPeak(Pool(), 50'000));
  }
  state.SetLabel(kind == 0   ? "mul+add GFLOP/s"
                 : kind == 1 ? "FMA GFLOP/s"
                 : kind == 2 ? "VNNI GOP/s"
                 : kind == 3 ? "VDPBF16PS GFLOP/s"
                             : "FMA fed from L1 GFLOP/s");
  state.counters["G/s"] = rate / 1e9;
}
BENCHMARK(BM_Peak)
    ->Arg(0)
    ->Arg(1)
    ->Arg(2)
    ->Arg(3)
    ->Arg(4)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// ---------------------------------------------------------------------------------------
// Quantized GEMV / small GEMM: args out, in, rows, ISA.

struct GemvWeights {
  std::vector<std::vector<uint8_t>> codes, scales;
  std::vector<kernels::LinearWeight> copies;  // rotated so each call streams from memory
  int64_t bytes = 0;                          // one copy
};

// tiles: FP4 (MXFP4 and NVFP4) codes repacked (kernels/cpu/fp4_tiles.h), as the V4 loader
// holds them when the AVX-512 BF16 path runs.
GemvWeights MakeGemv(kernels::LinearKind kind, int64_t out, int64_t in, bool tiles) {
  Rng rng(1);
  GemvWeights g;
  const bool fp8 =
      kind == kernels::LinearKind::kFp8Block || kind == kernels::LinearKind::kFp8AsBf16;
  const int64_t code_bytes = fp8 ? out * in : out * in / 2;
  const bool nvfp4 = kind == kernels::LinearKind::kNvfp4Row16;  // E4M3 per 16: 118..125 finite
  const int64_t scale_bytes = fp8     ? ((out + 127) / 128) * ((in + 127) / 128)
                              : nvfp4 ? out * in / 16
                                      : out * in / 32;
  g.bytes = code_bytes + scale_bytes;
  std::vector<uint8_t> codes = RandomBytes(code_bytes, rng, 0, 255);
  // FP8: a quantised Gaussian block (amax 4.5 sigma -> 448), as checkpoints hold: mostly
  // normal codes, a few zeros and subnormals (linear_fp8_shift_avx512bf16.cpp redoes their
  // pairs).
  if (fp8) {
    for (auto& c : codes) {
      c = F32ToE4M3(static_cast<float>(std::clamp(rng.Normal() * 448 / 4.5, -448.0, 448.0)));
    }
  }
  const std::vector<uint8_t> scales = RandomBytes(scale_bytes, rng, 118, 8);
  const int64_t copies = std::max<int64_t>(1, kStreamBytes / g.bytes);
  for (int64_t c = 0; c < copies; ++c) {
    g.codes.push_back(codes);
    g.scales.push_back(scales);
  }
  for (int64_t c = 0; c < copies; ++c) {
    kernels::LinearWeight w{kind, out, in};
    w.codes = g.codes[c].data();
    w.scales = g.scales[c].data();
    w.global_scale = 1.0f / 4096;
    if ((kind == kernels::LinearKind::kFp4Row32 || nvfp4) && tiles) {
      g.codes[c].resize(static_cast<size_t>(kernels::Fp4TilesBytes(out, in)));
      kernels::RepackFp4Tiles(codes.data(), out, in, g.codes[c].data());
      w.codes = nullptr;
      w.fp4_tiles = g.codes[c].data();
    }
    g.copies.push_back(w);
  }
  return g;
}

void Gemv(benchmark::State& state, kernels::LinearKind kind, ThreadPool& pool = Pool()) {
  kernels::Workspace ws;
  const int64_t out = state.range(0), in = state.range(1), rows = state.range(2);
  if (!UseIsa(state, 3)) return;
  const bool bf16_isa = state.range(3) == static_cast<int>(Isa::kAvx512Bf16);
  const GemvWeights g = MakeGemv(kind, out, in, bf16_isa);
  Rng rng(2);
  std::vector<BF16> x(static_cast<size_t>(rows * in)), y(static_cast<size_t>(rows * out));
  for (auto& v : x) v = F32ToBf16(static_cast<float>(rng.Normal()));
  size_t c = 0;
  for (auto _ : state) {
    kernels::Linear(pool, g.copies[c], x.data(), rows, y.data(), &ws);
    c = (c + 1) % g.copies.size();
    benchmark::DoNotOptimize(y.data());
  }
  // Quantised linears multiply-add with FMA (exact products), on the BF16 ISA with
  // VDPBF16PS (the FP8 GEMM with FMA where kernels::LinearRunsOnFmaGemm); the scalar path, and
  // kFp8AsBf16 off the BF16 ISA, with mul then add.
  const Isa isa = static_cast<Isa>(state.range(3));
  const bool mul_add =
      isa == Isa::kScalar || (kind == kernels::LinearKind::kFp8AsBf16 && isa != Isa::kAvx512Bf16);
  const Peak peak = kernels::LinearRunsOnFmaGemm(g.copies[0], rows) ? Peak::kFma
                    : mul_add                                       ? Peak::kMulAdd
                    : isa == Isa::kAvx512Bf16                       ? Peak::kBf16Dot
                                                                    : Peak::kFma;
  SetRoofline(state, static_cast<double>(g.bytes + rows * (in + out) * 2),
              2.0 * static_cast<double>(out * in * rows), peak);
  kernels::SetIsaForTesting(kernels::DetectIsa());
}
void BM_GemvFp8(benchmark::State& state) { Gemv(state, kernels::LinearKind::kFp8Block); }
void BM_GemvFp4(benchmark::State& state) { Gemv(state, kernels::LinearKind::kFp4Row32); }
// The MXFP4 expert GEMV at decode row counts on one thread, timed by its CPU time: the work
// without the other thread's scheduling, for busy machines (its bound: one thread's share).
void BM_GemvFp4OneThread(benchmark::State& state) {
  static ThreadPool one(1);
  Gemv(state, kernels::LinearKind::kFp4Row32, one);
}
void BM_GemvNvfp4(benchmark::State& state) { Gemv(state, kernels::LinearKind::kNvfp4Row16); }
void BM_GemvFp8AsBf16(benchmark::State& state) {
  Gemv(state, kernels::LinearKind::kFp8AsBf16);
}

void GemvArgs(benchmark::internal::Benchmark* b, std::vector<std::vector<int64_t>> shapes) {
  for (const auto& s : shapes) {
    for (int64_t rows : {1, 2, 4, 8, 16, 32, 64, 128, 512}) {
      for (int64_t isa : {0, 1, 2, 3}) {
        if (rows > 1 && isa < 2) continue;  // batching shown on the AVX-512 paths only
        b->Args({s[0], s[1], rows, isa});
      }
    }
  }
  b->ArgNames({"out", "in", "rows", "isa"})->Unit(benchmark::kMicrosecond)->UseRealTime();
}
// wq_b-like 4096x4096 and the attention output 4096x8192 (FP8); routed experts (FP4):
// w1/w3 2048x4096, w2 4096x2048.
BENCHMARK(BM_GemvFp8)->Apply([](auto* b) { GemvArgs(b, {{4096, 4096}, {4096, 8192}}); });
BENCHMARK(BM_GemvFp4)->Apply([](auto* b) { GemvArgs(b, {{2048, 4096}, {4096, 2048}}); });
BENCHMARK(BM_GemvFp4OneThread)
    ->ArgsProduct({{2048}, {4096}, {1, 2, 3, 4, 5, 6, 8, 12, 16}, {3}})
    ->ArgsProduct({{4096}, {2048}, {1, 2, 3, 4, 5, 6, 8, 12, 16}, {3}})
    ->ArgNames({"out", "in", "rows", "isa"})
    ->Unit(benchmark::kMicrosecond);
// NVFP4 routed experts (spec §11.5), same shapes: 1/16 more bytes than MXFP4 (E4M3 scales
// per 16 instead of E8M0 per 32). Compare with BM_GemvFp4 in one invocation (README).
BENCHMARK(BM_GemvNvfp4)->Apply([](auto* b) { GemvArgs(b, {{2048, 4096}, {4096, 2048}}); });
// V4-Flash attention projections at decode row counts: wq_a 1024x4096, wkv 512x4096, wq_b
// 32768x1024 (4096x4096 and wo_b 4096x8192 above).
BENCHMARK(BM_GemvFp8)->Apply([](auto* b) {
  for (const auto& s : std::vector<std::vector<int64_t>>{{1024, 4096}, {512, 4096}, {32768, 1024}}) {
    for (int64_t rows : {1, 2, 4, 8}) b->Args({s[0], s[1], rows, 3});
  }
  b->ArgNames({"out", "in", "rows", "isa"})->Unit(benchmark::kMicrosecond)->UseRealTime();
});
// V4 wo_a (one of Flash's 8 groups): FP8 weights used as BF16, unquantised BF16 input.
BENCHMARK(BM_GemvFp8AsBf16)->Apply([](auto* b) { GemvArgs(b, {{1024, 4096}}); });

// The head's form (kF32 stored as BF16, BF16 activations promoted: LinearBf16InF32), an
// 8192-token slice of the 129,280 x 4096 vocabulary (64 MB; the whole head is 16x this).
// Args out, in, rows, ISA: the AVX-512 FP32 tiles (isa 2) against VDPBF16PS (isa 3) from
// 2 rows on (from kGemmMinRows rows the FMA GEMM where kernels::LinearRunsOnFmaGemm). Bound:
// the BF16 weights once, 2 x rows x out x in flops at the peak of the path's instruction
// (the FP32 tiles: the VDPBF16PS peak, for comparison with isa 3).
void BM_HeadBf16(benchmark::State& state) {
  kernels::Workspace ws;
  const int64_t out = state.range(0), in = state.range(1), rows = state.range(2);
  if (!UseIsa(state, 3)) return;
  Rng rng(3);
  std::vector<BF16> w(static_cast<size_t>(out * in)), x(static_cast<size_t>(rows * in));
  for (auto& v : w) v = F32ToBf16(static_cast<float>(rng.Normal() * 0.02));
  for (auto& v : x) v = F32ToBf16(static_cast<float>(rng.Normal()));
  kernels::LinearWeight lw{kernels::LinearKind::kF32, out, in};
  lw.bf16 = w.data();
  std::vector<float> y(static_cast<size_t>(rows * out));
  for (auto _ : state) {
    kernels::LinearBf16InF32(Pool(), lw, x.data(), rows, y.data(), &ws);
    benchmark::DoNotOptimize(y.data());
  }
  SetRoofline(state, static_cast<double>(out * in * 2 + rows * (in * 2 + out * 4)),
              2.0 * static_cast<double>(out * in * rows),
              kernels::LinearRunsOnFmaGemm(lw, rows) ? Peak::kFma : Peak::kBf16Dot);
  kernels::SetIsaForTesting(kernels::DetectIsa());
}
BENCHMARK(BM_HeadBf16)->Apply([](auto* b) {
  for (int64_t rows : {1, 2, 4, 8, 16, 64}) {
    for (int64_t isa : {2, 3}) b->Args({8192, 4096, rows, isa});
  }
  b->ArgNames({"out", "in", "rows", "isa"})->Unit(benchmark::kMicrosecond)->UseRealTime();
});

// ---------------------------------------------------------------------------------------
// Indexer scan + top-k: args keys, ISA. V4-Flash: 64 heads x 128, top 512, FP4 keys (68 B).

// FP4 keys (68 B at dim 128) with plausible scales (2^-5 .. 2^-2), `per_page` to a page.
struct Fp4Keys {
  std::vector<uint8_t> bytes;
  std::vector<const uint8_t*> pages;
  kernels::PagedRows rows;
};
Fp4Keys MakeFp4Keys(int64_t n, int64_t dim, int64_t per_page, Rng& rng) {
  Fp4Keys k;
  const int64_t key_bytes = dim / 2 + dim / 32;
  k.bytes = RandomBytes(n * key_bytes, rng, 0, 255);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t b = 0; b < dim / 32; ++b) k.bytes[i * key_bytes + dim / 2 + b] = 122 + rng.Below(4);
  }
  for (int64_t i = 0; i < n; i += per_page) k.pages.push_back(k.bytes.data() + i * key_bytes);
  k.rows = {k.pages.data(), per_page, key_bytes};
  return k;
}

void BM_IndexerTopK(benchmark::State& state) {
  kernels::Workspace ws;
  const int64_t n = state.range(0), heads = 64, dim = 128, k = 512;
  if (!UseIsa(state, 1)) return;
  Rng rng(3);
  const Fp4Keys keys = MakeFp4Keys(n, dim, 64, rng);
  std::vector<BF16> q(static_cast<size_t>(heads * dim)), w(static_cast<size_t>(heads));
  for (auto& v : q) v = F32ToBf16(static_cast<float>(rng.Normal()));
  for (auto& v : w) v = F32ToBf16(static_cast<float>(rng.Normal() * 0.1));
  const kernels::IndexerQuery query{q.data(), w.data(), heads, dim};
  std::vector<int64_t> selected;
  for (auto _ : state) {
    kernels::IndexerTopKFp4(Pool(), query, keys.rows, n, k, &selected, &ws);
    benchmark::DoNotOptimize(selected.data());
  }
  SetRoofline(
      state, static_cast<double>(n * keys.rows.row_bytes),
      2.0 * static_cast<double>(n * heads * dim),
      static_cast<Isa>(state.range(1)) == Isa::kAvx512Bf16 ? Peak::kBf16Dot : Peak::kMulAdd);
  kernels::SetIsaForTesting(kernels::DetectIsa());
}
BENCHMARK(BM_IndexerTopK)
    ->Args({1 << 16, 0})
    ->Args({1 << 20, 1})
    ->Args({1 << 20, 2})
    ->Args({1 << 20, 3})
    ->ArgNames({"keys", "isa"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The grouped scan of prefill (IndexerTopKFp4Group): `group` consecutive tokens' queries over
// the keys of their context, each seeing (pos + 1) / 4 of them, as a prefill chunk's tokens
// do. Args keys, heads, group, ISA; group 1 is the single-query scan (decode). "qkeys/s":
// query-key scores per second (group x keys per iteration). Heads 4: the built-in tiny
// model's indexer (decoding a tile costs about as much as scoring it); 64: V4-Flash's.
void BM_IndexerTopKGroup(benchmark::State& state) {
  kernels::Workspace ws;
  const int64_t n = state.range(0), heads = state.range(1), group = state.range(2);
  const int64_t dim = 128, k = 512;
  if (!UseIsa(state, 3)) return;
  Rng rng(3);
  const Fp4Keys keys = MakeFp4Keys(n, dim, 64, rng);
  std::vector<BF16> q(static_cast<size_t>(group * heads * dim));
  std::vector<BF16> w(static_cast<size_t>(group * heads));
  for (auto& v : q) v = F32ToBf16(static_cast<float>(rng.Normal()));
  for (auto& v : w) v = F32ToBf16(static_cast<float>(rng.Normal() * 0.1));
  std::vector<kernels::IndexerQuery> queries;
  std::vector<int64_t> visible;
  for (int64_t j = 0; j < group; ++j) {
    queries.push_back({q.data() + j * heads * dim, w.data() + j * heads, heads, dim});
    visible.push_back(n - (group - 1 - j) / 4);  // positions 4n - group .. 4n - 1
  }
  std::vector<std::vector<int64_t>> selected(static_cast<size_t>(group));
  for (auto _ : state) {
    kernels::IndexerTopKFp4Group(Pool(), queries, visible, keys.rows, k, selected.data(), &ws);
    benchmark::DoNotOptimize(selected.data());
  }
  state.counters["qkeys"] = benchmark::Counter(static_cast<double>(group * n),
                                               benchmark::Counter::kIsIterationInvariantRate);
  SetRoofline(
      state, static_cast<double>(n * keys.rows.row_bytes),
      2.0 * static_cast<double>(group * n * heads * dim),
      static_cast<Isa>(state.range(3)) == Isa::kAvx512Bf16 ? Peak::kBf16Dot : Peak::kMulAdd);
  kernels::SetIsaForTesting(kernels::DetectIsa());
}
BENCHMARK(BM_IndexerTopKGroup)
    ->ArgsProduct({{1 << 18}, {4}, {1, 4, 8, 16, 32}, {2, 3}})
    ->ArgsProduct({{1 << 16}, {64}, {1, 8, 16}, {3}})
    ->ArgNames({"keys", "heads", "group", "isa"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// ---------------------------------------------------------------------------------------
// V3.2 indexer scan + top-k: args keys, ISA. 64 heads x 128, top 2048, FP8 keys with one FP32
// scale (132 B), contiguous as the V3.2 cache holds them.

void BM_IndexerTopKFp8(benchmark::State& state) {
  kernels::Workspace ws;
  const int64_t n = state.range(0), heads = 64, dim = 128, k = 2048;
  if (!UseIsa(state, 1)) return;
  Rng rng(5);
  const int64_t key_bytes = IndexerKeyFp8Bytes(dim);
  std::vector<uint8_t> keys = RandomBytes(n * key_bytes, rng, 0, 0x7F);  // no NaN code 0x7F
  for (int64_t i = 0; i < n; ++i) {
    uint8_t* row = keys.data() + i * key_bytes;
    for (int64_t d = 0; d < dim; ++d) row[d] |= static_cast<uint8_t>(rng.Below(2) << 7);  // sign
    const float scale = std::ldexp(1.0f, -8 + static_cast<int>(rng.Below(4)));  // act_quant-like
    std::memcpy(row + dim, &scale, sizeof(scale));
  }
  const uint8_t* page = keys.data();
  std::vector<uint8_t> q = RandomBytes(heads * dim, rng, 0, 0x7F);
  std::vector<float> w(static_cast<size_t>(heads));
  for (auto& v : w) v = static_cast<float>(rng.Normal() * 0.01);
  const kernels::IndexerQueryFp8 query{q.data(), w.data(), heads, dim};
  const kernels::PagedRows rows{&page, n, key_bytes};
  std::vector<int64_t> selected;
  for (auto _ : state) {
    kernels::IndexerTopKFp8(Pool(), query, rows, n, k, &selected, &ws);
    benchmark::DoNotOptimize(selected.data());
  }
  // E4M3 x E4M3 products are exact: FMA on AVX2 / AVX-512, VDPBF16PS on the BF16 ISA.
  const Isa isa = static_cast<Isa>(state.range(1));
  const Peak peak = isa == Isa::kScalar       ? Peak::kMulAdd
                    : isa == Isa::kAvx512Bf16 ? Peak::kBf16Dot
                                              : Peak::kFma;
  SetRoofline(state, static_cast<double>(n * key_bytes), 2.0 * static_cast<double>(n * heads * dim),
              peak);
  kernels::SetIsaForTesting(kernels::DetectIsa());
}
BENCHMARK(BM_IndexerTopKFp8)
    ->ArgsProduct({{1 << 17, 1 << 20}, {0, 1, 2, 3}})
    ->ArgNames({"keys", "isa"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// ---------------------------------------------------------------------------------------
// Sparse gather attention: args ISA. V4-Flash CSA at 1M context: 64 heads, d = 448 FP8 +
// 64 BF16 RoPE (584-B entries), 128 window rows + 512 entries picked from 256K.

// On `pool`; the bound takes the pool's share of the machine's peak (a one-thread pool: one
// thread's).
// selected: the compressed entries after the window's 128 rows (CSA's top-512 picked at
// random from 2^18; HCA's every entry, consecutive).
void GatherAttention(benchmark::State& state, ThreadPool& pool, int64_t selected = 512) {
  kernels::Workspace ws;
  const int64_t heads = 64, d_nope = 448, rope = 64, d = d_nope + rope;
  const int64_t window = 128, pool_entries = 1 << 18, entry_bytes = 584;
  const bool all = selected > 512;
  if (!UseIsa(state, 0)) return;
  Rng rng(4);
  std::vector<uint8_t> entries(static_cast<size_t>(pool_entries * entry_bytes));
  for (int64_t i = 0; i < pool_entries; ++i) {
    uint8_t* e = entries.data() + i * entry_bytes;
    for (int64_t k = 0; k < d_nope; ++k) e[k] = static_cast<uint8_t>(rng.Below(0x7E));
    for (int64_t b = 0; b < d_nope / 64; ++b) e[d_nope + b] = 118 + rng.Below(6);
    for (int64_t k = 0; k < rope; ++k) {
      const BF16 v = F32ToBf16(static_cast<float>(rng.Normal()));
      std::memcpy(e + d_nope + d_nope / 64 + 2 * k, &v, 2);
    }
  }
  std::vector<const uint8_t*> rows;
  for (int64_t i = 0; i < window; ++i) rows.push_back(entries.data() + i * entry_bytes);
  std::vector<int64_t> picks;
  for (int64_t i = 0; i < selected; ++i) {
    picks.push_back(window + (all ? i : static_cast<int64_t>(rng.Below(pool_entries - window))));
  }
  std::sort(picks.begin(), picks.end());
  for (int64_t i : picks) rows.push_back(entries.data() + i * entry_bytes);
  std::vector<BF16> q(static_cast<size_t>(heads * d)), out(q.size());
  for (auto& v : q) v = F32ToBf16(static_cast<float>(rng.Normal() * 0.05));
  std::vector<float> sink(static_cast<size_t>(heads), 0.0f);
  const int64_t n = static_cast<int64_t>(rows.size());
  for (auto _ : state) {
    kernels::SparseAttentionPacked(pool, q.data(), rows.data(), n, sink.data(), heads, d_nope,
                                   rope, 1.0f / 22.6f, out.data(), &ws);
    benchmark::DoNotOptimize(out.data());
  }
  const double share = static_cast<double>(Pool().num_threads()) / pool.num_threads();
  SetRoofline(
      state, static_cast<double>(n * entry_bytes + heads * d * 2) * share,
      2.0 * 2.0 * static_cast<double>(heads * n * d) * share,
      static_cast<Isa>(state.range(0)) == Isa::kAvx512Bf16 ? Peak::kBf16Dot : Peak::kMulAdd);
  kernels::SetIsaForTesting(kernels::DetectIsa());
}
void BM_GatherAttention(benchmark::State& state) { GatherAttention(state, Pool()); }
// The same on one thread, timed by its CPU time (the rates too): the work without the other
// thread's scheduling, for busy machines.
void BM_GatherAttentionOneThread(benchmark::State& state) {
  static ThreadPool one(1);
  GatherAttention(state, one);
}
BENCHMARK(BM_GatherAttentionOneThread)->Arg(3)->ArgName("isa")->Unit(benchmark::kMicrosecond);
// V4-Flash HCA at 1M context: the window and all 8,192 compressed entries (1M / 128).
void BM_GatherAttentionHca(benchmark::State& state) { GatherAttention(state, Pool(), 8192); }
BENCHMARK(BM_GatherAttentionHca)
    ->Arg(3)
    ->ArgName("isa")
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_GatherAttention)
    ->Arg(0)
    ->Arg(1)
    ->Arg(2)
    ->Arg(3)
    ->ArgName("isa")
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace
}  // namespace dsv4::bench

int main(int argc, char** argv) {
  using namespace dsv4;
  benchmark::Initialize(&argc, argv);
  const kernels::Isa isa = kernels::DetectIsa();
  bench::g_limits = bench::MeasureLimits(bench::Pool(), isa);
  std::printf(
      "machine: %d threads, best ISA %s; read %.1f GB/s; peaks: mul+add %.1f GFLOP/s, FMA %.1f "
      "GFLOP/s, VDPBF16PS %.1f GFLOP/s, VNNI %.1f GOP/s; FMA fed from L1 (the GEMMs' loop, not "
      "a bound) %.1f GFLOP/s\n",
      bench::Pool().num_threads(), std::string(kernels::IsaName(isa)).c_str(),
      bench::g_limits.read_bytes_per_s / 1e9, bench::g_limits.muladd_flops / 1e9,
      bench::g_limits.fma_flops / 1e9, bench::g_limits.bf16_flops / 1e9,
      bench::g_limits.vnni_ops / 1e9, bench::g_limits.fma_l1_flops / 1e9);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
