// Every ISA path of the linears gives the scalar path's bits (the canonical 8-lane order) on
// random shapes, weight formats, batch sizes and partial output tiles.
#include <gtest/gtest.h>

#include <bit>
#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "core/fp8.h"
#include "core/quant.h"
#include "core/rng.h"
#include "isa_test_util.h"
#include "kernels/cpu/fp4_tiles.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/linear_internal.h"

namespace dsv4::kernels {
namespace {

struct Weights {
  LinearWeight w;
  std::vector<uint8_t> codes, scales;
  std::vector<BF16> bf16;
  std::vector<float> f32, scales_f32;
};

// Random weights of `kind`. Scales spread over a wide range (including the extreme E8M0 codes
// 0 and 254 when `extreme`) so that the block combine's rounding is exercised too.
Weights MakeWeights(LinearKind kind, int64_t out, int64_t in, bool f32_scales, bool extreme,
                    Rng& rng) {
  Weights r;
  r.w = {kind, out, in};
  auto scale_code = [&] {
    if (extreme && rng.Below(8) == 0) return static_cast<uint8_t>(rng.Below(2) == 0 ? 0 : 254);
    return static_cast<uint8_t>(110 + rng.Below(20));
  };
  switch (kind) {
    case LinearKind::kFp8Block:
      r.codes.resize(out * in);
      for (auto& c : r.codes) {
        do c = static_cast<uint8_t>(rng.Below(256));
        while ((c & 0x7F) == 0x7F);
      }
      r.scales.resize(((out + 127) / 128) * ((in + 127) / 128));
      for (auto& s : r.scales) s = scale_code();
      if (f32_scales) {
        r.scales_f32.resize(r.scales.size());
        for (auto& s : r.scales_f32) s = static_cast<float>(rng.Uniform(1e-4, 1e-2));
      }
      break;
    case LinearKind::kFp4Row32:
      r.codes.resize(out * in / 2);
      for (auto& c : r.codes) c = static_cast<uint8_t>(rng.Below(256));
      r.scales.resize(out * in / 32);
      for (auto& s : r.scales) s = scale_code();
      break;
    case LinearKind::kNvfp4Row16:  // finite E4M3 block scales, a non-power-of-two global
      r.codes.resize(out * in / 2);
      for (auto& c : r.codes) c = static_cast<uint8_t>(rng.Below(256));
      r.scales.resize(out * in / 16);
      for (auto& s : r.scales) {
        do s = static_cast<uint8_t>(rng.Below(128));
        while (s == 0x7F);
      }
      r.w.global_scale = static_cast<float>(rng.Uniform(1e-4, 1e-2));
      break;
    case LinearKind::kFp8AsBf16:  // scales within Fp8AsBf16ScalesOk, its bounds when extreme
      r.codes.resize(out * in);
      for (auto& c : r.codes) {
        do c = static_cast<uint8_t>(rng.Below(256));
        while ((c & 0x7F) == 0x7F);
      }
      r.scales.resize(((out + 127) / 128) * ((in + 127) / 128));
      for (auto& s : r.scales) {
        s = extreme && rng.Below(4) == 0 ? static_cast<uint8_t>(rng.Below(2) == 0 ? 10 : 246)
                                         : static_cast<uint8_t>(112 + rng.Below(16));
      }
      break;
    case LinearKind::kBf16:
      r.bf16.resize(out * in);
      for (auto& v : r.bf16) v = F32ToBf16(static_cast<float>(rng.Normal() / std::sqrt(in)));
      break;
    case LinearKind::kF32:
      r.f32.resize(out * in);
      for (auto& v : r.f32) v = static_cast<float>(rng.Normal() / std::sqrt(in));
      break;
  }
  r.w.codes = r.codes.data();
  r.w.scales = r.scales.data();
  r.w.bf16 = r.bf16.data();
  r.w.f32 = r.f32.data();
  r.w.scales_f32 = r.scales_f32.empty() ? nullptr : r.scales_f32.data();
  return r;
}

std::vector<BF16> RandomInput(int64_t n, Rng& rng) {
  std::vector<BF16> x(n);
  for (auto& v : x) v = F32ToBf16(static_cast<float>(rng.Normal() * std::exp(rng.Uniform(-3, 3))));
  // Exact zeros and negative zeros, which the signed-zero rules of the lane sums must keep.
  for (int64_t i = 0; i < n; i += 37) x[i] = F32ToBf16(i % 2 == 0 ? 0.0f : -0.0f);
  return x;
}

// The paths a linear runs on: every ISA, and on AVX-512 BF16 its FP8 GEMM both ways
// (VDPBF16PS and FMAs: internal::FmaGemmPreferred picks one per CPU).
struct LinearPath {
  Isa isa;
  std::optional<bool> fma_gemm;
  std::string Name() const {
    return std::string(IsaName(isa)) + (fma_gemm ? (*fma_gemm ? "/fma-gemm" : "/bf16-gemm") : "");
  }
};

std::vector<LinearPath> LinearPaths() {
  std::vector<LinearPath> out;
  for (Isa isa : SupportedIsas()) {
    if (isa == Isa::kAvx512Bf16) {
      out.push_back({isa, false});
      out.push_back({isa, true});
    } else {
      out.push_back({isa, std::nullopt});
    }
  }
  return out;
}

// Forces a path for a scope.
class ScopedPath {
 public:
  explicit ScopedPath(const LinearPath& p) : isa_(p.isa) {
    internal::SetFmaGemmPreferredForTesting(p.fma_gemm);
  }
  ~ScopedPath() { internal::SetFmaGemmPreferredForTesting(std::nullopt); }
  ScopedPath(const ScopedPath&) = delete;
  ScopedPath& operator=(const ScopedPath&) = delete;

 private:
  ScopedIsa isa_;
};

// Runs the linear once per path and returns the outputs as raw bits.
std::vector<std::vector<uint32_t>> RunAll(const Weights& lin, int64_t rows, Rng& rng) {
  Workspace ws;
  ThreadPool pool(2);
  const int64_t in = lin.w.in, out = lin.w.out;
  std::vector<std::vector<uint32_t>> results;
  if (lin.w.kind == LinearKind::kF32) {
    std::vector<float> x(rows * in);
    for (auto& v : x) v = static_cast<float>(rng.Normal());
    for (const LinearPath& path : LinearPaths()) {
      ScopedPath scoped(path);
      std::vector<float> y(rows * out);
      LinearF32(pool, lin.w, x.data(), rows, y.data(), &ws);
      std::vector<uint32_t> bits(y.size());
      for (size_t i = 0; i < y.size(); ++i) bits[i] = std::bit_cast<uint32_t>(y[i]);
      results.push_back(bits);
    }
    return results;
  }
  std::vector<BF16> x = RandomInput(rows * in, rng);
  for (const LinearPath& path : LinearPaths()) {
    ScopedPath scoped(path);
    std::vector<BF16> y(rows * out);
    Linear(pool, lin.w, x.data(), rows, y.data(), &ws);
    std::vector<uint32_t> bits(y.size());
    for (size_t i = 0; i < y.size(); ++i) bits[i] = y[i].bits;
    results.push_back(bits);
  }
  return results;
}

void ExpectAllEqual(const std::vector<std::vector<uint32_t>>& results, const std::string& what) {
  const std::vector<LinearPath> paths = LinearPaths();
  for (size_t p = 1; p < results.size(); ++p) {
    ASSERT_EQ(results[p].size(), results[0].size());
    for (size_t i = 0; i < results[0].size(); ++i) {
      ASSERT_EQ(results[p][i], results[0][i])
          << what << ": " << paths[p].Name() << " differs from scalar at element " << i;
    }
  }
}

class LinearIsa : public ::testing::TestWithParam<LinearKind> {};

TEST_P(LinearIsa, EveryIsaMatchesScalarBitForBit) {
  ScopedFineSplit split;
  Rng rng(1234 + static_cast<int>(GetParam()));
  for (int trial = 0; trial < 24; ++trial) {
    const int64_t in = GetParam() == LinearKind::kBf16 || GetParam() == LinearKind::kF32 ||
                               GetParam() == LinearKind::kFp8AsBf16
                           ? 32 * (1 + rng.Below(24))
                           : 128 * (1 + rng.Below(6));
    const int64_t out = 1 + rng.Below(300);
    const int64_t rows = trial % 3 == 0 ? 1 : 1 + rng.Below(6);
    const bool f32_scales = GetParam() == LinearKind::kFp8Block && trial % 2 == 1;
    const Weights lin = MakeWeights(GetParam(), out, in, f32_scales, trial % 4 == 3, rng);
    ExpectAllEqual(RunAll(lin, rows, rng), "trial " + std::to_string(trial) + " out " +
                                               std::to_string(out) + " in " + std::to_string(in) +
                                               " rows " + std::to_string(rows));
  }
}

TEST(LinearIsaShapes, InputsNotAMultipleOf32FallBackToTheSameBits) {
  for (LinearKind kind : {LinearKind::kBf16, LinearKind::kF32}) {
    Rng rng(99);
    const Weights lin = MakeWeights(kind, 37, 100, false, false, rng);
    ExpectAllEqual(RunAll(lin, 3, rng), "in 100");
  }
}

// NVFP4 beyond the ordinary scales: every E4M3 scale code but NaN (zeros, subnormals and
// negative codes included) and global scales from where b and the parts underflow to where
// the lane sums overflow, on shapes with several input rows and partial tiles.
TEST(LinearNvfp4Isa, EveryIsaMatchesScalarOnExtremeScales) {
  ScopedFineSplit split;
  Rng rng(4321);
  const float globals[] = {1.37e-38f, 2.9e-30f, 3.1e-3f, 0.7f, 1.0f, 5.3e4f, 1.1e33f};
  for (int trial = 0; trial < 28; ++trial) {
    const int64_t in = 128 * (1 + rng.Below(8));
    const int64_t out = 1 + rng.Below(200);
    const int64_t rows = trial % 4 == 0 ? 1 : 1 + rng.Below(5);
    Weights lin = MakeWeights(LinearKind::kNvfp4Row16, out, in, false, false, rng);
    for (auto& sc : lin.scales) {
      do sc = static_cast<uint8_t>(rng.Below(256));
      while ((sc & 0x7F) == 0x7F);
    }
    const float g = globals[trial % 7];
    lin.w.global_scale = trial % 2 == 0 ? g : -g * 1.01f;
    ExpectAllEqual(RunAll(lin, rows, rng), "trial " + std::to_string(trial) + " out " +
                                               std::to_string(out) + " in " + std::to_string(in) +
                                               " rows " + std::to_string(rows));
  }
}

// The quantised kinds at decode row counts past the random trials' 1-6 (FP8's block-by-block
// multi-row schedule with its odd-row tail; FP4 passes of 4 rows): every ISA, scalar bits.
TEST(LinearIsaRows, QuantisedKindsAtDecodeRowCounts) {
  ScopedFineSplit split;
  Rng rng(4711);
  for (LinearKind kind : {LinearKind::kFp8Block, LinearKind::kFp4Row32}) {
    for (int64_t rows : {2, 5, 17, 64}) {
      const int64_t in = 128 * (1 + rng.Below(5)), out = 1 + rng.Below(150);
      const Weights lin = MakeWeights(kind, out, in, kind == LinearKind::kFp8Block && rows == 5,
                                      rows == 17, rng);
      ExpectAllEqual(RunAll(lin, rows, rng), "kind " + std::to_string(static_cast<int>(kind)) +
                                                 " rows " + std::to_string(rows) + " in " +
                                                 std::to_string(in) + " out " +
                                                 std::to_string(out));
    }
  }
}

// The FP8 GEMM of prefill row counts (linear_gemm_avx512bf16.cpp, from kGemmMinRows rows):
// ragged row groups of 3, a row count past the row block (its tail on the small-row paths),
// partial output tiles and tiles across a 128-row scale boundary, inputs across several
// 512-value slices with a partial last one, FP32 and extreme block scales; kFp8AsBf16 with
// an input width the GEMM does not take (not a multiple of 128).
TEST(LinearIsaRows, Fp8GemmAtPrefillRowCounts) {
  ScopedFineSplit split;
  Rng rng(9001);
  struct Case {
    LinearKind kind;
    int64_t rows, in, out;
    bool f32_scales, extreme;
  };
  const Case cases[] = {
      {LinearKind::kFp8Block, 8, 640, 40, false, false},
      {LinearKind::kFp8Block, 13, 256, 20, true, false},
      {LinearKind::kFp8Block, 16, 640, 40, false, false},
      {LinearKind::kFp8Block, 19, 1152, 136, true, false},
      {LinearKind::kFp8Block, 50, 128, 17, false, true},
      {LinearKind::kFp8Block, 259, 256, 33, false, false},
      {LinearKind::kFp8AsBf16, 8, 640, 24, false, true},
      {LinearKind::kFp8AsBf16, 16, 640, 150, false, false},
      {LinearKind::kFp8AsBf16, 37, 1152, 24, false, true},
      {LinearKind::kFp8AsBf16, 20, 96, 20, false, false},
  };
  for (const Case& c : cases) {
    const Weights lin = MakeWeights(c.kind, c.out, c.in, c.f32_scales, c.extreme, rng);
    ExpectAllEqual(RunAll(lin, c.rows, rng), "kind " + std::to_string(static_cast<int>(c.kind)) +
                                                 " rows " + std::to_string(c.rows) + " in " +
                                                 std::to_string(c.in) + " out " +
                                                 std::to_string(c.out));
  }
}

// MXFP4 in the tile layout (the routed experts as the loader repacks them) at the row counts
// of the expert GEMM (the FMA panel from kFp4FmaMinRows rows, linear_fp4_fma_avx512.cpp, and
// the VDPBF16PS paths): partial output tiles, a partial last k-block, and weight scales
// outside the folded range (extreme: E8M0 codes 0 and 254) that send a call back to the
// VDPBF16PS paths. Every path against scalar.
TEST(LinearIsaRows, Fp4TilesAtExpertGemmRowCounts) {
  ScopedFineSplit split;
  Rng rng(4242);
  struct Case {
    int64_t rows, in, out;
    bool extreme;
  };
  const Case cases[] = {{16, 384, 45, false}, {17, 256, 16, false}, {19, 512, 33, false},
                        {13, 640, 40, false}, {67, 256, 24, false}, {24, 384, 45, true},
                        {4, 384, 45, false},  {5, 256, 33, false},  {6, 640, 16, false},
                        {7, 384, 40, false},  {8, 512, 24, false},  {9, 256, 45, true}};
  for (const Case& c : cases) {
    Weights lin = MakeWeights(LinearKind::kFp4Row32, c.out, c.in, false, c.extreme, rng);
    std::vector<uint8_t> tiles(static_cast<size_t>(Fp4TilesBytes(c.out, c.in)));
    RepackFp4Tiles(lin.codes.data(), c.out, c.in, tiles.data());
    lin.w.codes = nullptr;
    lin.w.fp4_tiles = tiles.data();
    ExpectAllEqual(RunAll(lin, c.rows, rng), "rows " + std::to_string(c.rows) + " in " +
                                                 std::to_string(c.in) + " out " +
                                                 std::to_string(c.out));
  }
}

// FP8 weights as quantisation leaves them (linear_avx512bf16.cpp's shifted decode): normal
// codes, with a few zero and subnormal codes in some 128-column blocks of a few pairs of
// rows, which those pairs' blocks redo through the exact tables (kFp8AsBf16: zeros too), and
// tiles across a 128-row scale boundary. Both FP8 kinds at 1-8 rows (the shifted decode's
// 1-kShiftMaxRows and the GEMM's first) and at 9-17 (the GEMM's passes of 3, 2 and 1 rows
// over its shifted panel), every ISA, scalar bits.
TEST(LinearIsaRows, Fp8MostlyNormalCodesWithRareOddOnes) {
  ScopedFineSplit split;
  Rng rng(2718);
  const int64_t kRowCounts[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 16, 17};
  for (int trial = 0; trial < 24; ++trial) {
    const LinearKind kind = trial % 2 == 0 ? LinearKind::kFp8Block : LinearKind::kFp8AsBf16;
    const int64_t in = 128 * (1 + rng.Below(8)), out = 100 + rng.Below(100);  // 1-2 slices
    const int64_t rows = kRowCounts[(trial / 2 + trial % 2 * 3) % 12];
    Weights lin = MakeWeights(kind, out, in, kind == LinearKind::kFp8Block && trial % 4 == 2,
                              trial % 4 == 3, rng);
    for (auto& c : lin.codes) {  // exponent field 1-15, never the NaN code
      do c = static_cast<uint8_t>(rng.Below(256));
      while ((c & 0x78) == 0 || (c & 0x7F) == 0x7F);
    }
    auto odd_code = [&] { return static_cast<uint8_t>(rng.Below(8) | (rng.Below(2) << 7)); };
    for (int i = 0; i < 6; ++i) lin.codes[rng.Below(out * in)] = odd_code();
    // Rows of only zero and subnormal codes, whose outputs they alone decide.
    for (int i = 0; i < 3; ++i) {
      const int64_t n = rng.Below(out);
      for (int64_t k = 0; k < in; ++k) lin.codes[n * in + k] = odd_code();
    }
    ExpectAllEqual(RunAll(lin, rows, rng), "trial " + std::to_string(trial) + " out " +
                                               std::to_string(out) + " in " + std::to_string(in) +
                                               " rows " + std::to_string(rows));
  }
}

INSTANTIATE_TEST_SUITE_P(Kinds, LinearIsa,
                         ::testing::Values(LinearKind::kFp8Block, LinearKind::kFp4Row32,
                                           LinearKind::kNvfp4Row16, LinearKind::kBf16,
                                           LinearKind::kF32, LinearKind::kFp8AsBf16));

// kFp8AsBf16 is kBf16 on the dequantised matrix, bit for bit, on every ISA: with ordinary
// inputs (the VDPBF16PS path where present) and with inputs that force the FP32 fallback (a
// subnormal, a huge value next to tiny ones).
TEST(LinearFp8AsBf16, EqualsBf16OnTheDequantisedWeights) {
  Workspace ws;
  Rng rng(77);
  ThreadPool pool(2);
  for (int trial = 0; trial < 12; ++trial) {
    const int64_t out = 1 + rng.Below(200), in = 32 * (1 + rng.Below(40));
    const int64_t rows = 1 + rng.Below(6);
    const Weights q = MakeWeights(LinearKind::kFp8AsBf16, out, in, false, trial % 2 == 1, rng);
    std::vector<BF16> deq(static_cast<size_t>(out * in));
    for (int64_t n = 0; n < out; ++n) {
      for (int64_t k = 0; k < in; ++k) {
        const float v = E4M3ToF32(q.codes[n * in + k]) *
                        E8M0ToF32(q.scales[(n / 128) * ((in + 127) / 128) + k / 128]);
        deq[n * in + k] = F32ToBf16(v);
        ASSERT_EQ(Bf16ToF32(deq[n * in + k]), v) << "dequantisation must be BF16-exact";
      }
    }
    LinearWeight b{LinearKind::kBf16, out, in};
    b.bf16 = deq.data();
    std::vector<BF16> x = RandomInput(rows * in, rng);
    if (trial % 3 == 1) x[rng.Below(rows * in)].bits = 0x0001;  // a subnormal
    if (trial % 3 == 2) x[rng.Below(rows * in)] = F32ToBf16(1e30f);
    for (Isa isa : SupportedIsas()) {
      ScopedIsa scoped(isa);
      std::vector<BF16> y_q(rows * out), y_b(rows * out);
      Linear(pool, q.w, x.data(), rows, y_q.data(), &ws);
      Linear(pool, b, x.data(), rows, y_b.data(), &ws);
      for (size_t i = 0; i < y_q.size(); ++i) {
        ASSERT_EQ(y_q[i].bits, y_b[i].bits)
            << IsaName(isa) << " trial " << trial << " element " << i;
      }
    }
  }
}

TEST(Isa, DetectionAndOverride) {
  EXPECT_TRUE(IsaSupported(Isa::kScalar));
  EXPECT_TRUE(IsaSupported(DetectIsa()));
  for (Isa isa : SupportedIsas()) {
    ScopedIsa scoped(isa);
    EXPECT_EQ(ActiveIsa(), isa);
  }
  EXPECT_EQ(IsaName(Isa::kAvx512), "avx512");
}

}  // namespace
}  // namespace dsv4::kernels

namespace dsv4::kernels {
namespace {

TEST(E8M0Table, MatchesTheCoreDecoder) {
  for (int b = 0; b < 256; ++b) {
    const float a = internal::E8M0Table()[b], e = E8M0ToF32(static_cast<uint8_t>(b));
    if (std::isnan(e)) {
      EXPECT_TRUE(std::isnan(a)) << b;
    } else {
      EXPECT_EQ(std::bit_cast<uint32_t>(a), std::bit_cast<uint32_t>(e)) << b;
    }
  }
}

}  // namespace
}  // namespace dsv4::kernels

namespace dsv4::kernels {
namespace {

// The AVX-512 input quantisation gives ActQuantFp8's codes (as E4M3 values) and scales bit for
// bit: every BF16 bit pattern (NaN, ±inf, subnormals, ±0 included) in blocks of 128, then
// random rows whose block maxima span many binades.
TEST(ActQuantValuesAvx512, MatchesTheScalarQuantiser) {
  if (!IsaSupported(Isa::kAvx512)) GTEST_SKIP() << "no AVX-512";
  auto check = [](const std::vector<BF16>& x, const std::string& what) {
    const int64_t in = static_cast<int64_t>(x.size()), blocks = in / 128;
    std::vector<uint8_t> codes(x.size());
    std::vector<float> scales(static_cast<size_t>(blocks)), values(x.size()),
        fast_scales(static_cast<size_t>(blocks));
    ActQuantFp8(x, 128, codes, scales);
    internal::ActQuantValuesAvx512(x.data(), in, values.data(), fast_scales.data());
    for (int64_t b = 0; b < blocks; ++b) {
      ASSERT_EQ(std::bit_cast<uint32_t>(fast_scales[b]), std::bit_cast<uint32_t>(scales[b]))
          << what << " block " << b;
    }
    for (int64_t i = 0; i < in; ++i) {
      ASSERT_EQ(std::bit_cast<uint32_t>(values[i]), std::bit_cast<uint32_t>(E4M3ToF32(codes[i])))
          << what << " element " << i << " input bits " << x[i].bits;
    }
  };
  std::vector<BF16> all(65536);
  for (uint32_t b = 0; b < 65536; ++b) all[b].bits = static_cast<uint16_t>(b);
  check(all, "every pattern");
  // The same patterns shuffled, so each block mixes magnitudes.
  Rng rng(5);
  for (size_t i = all.size() - 1; i > 0; --i) std::swap(all[i], all[rng.Below(i + 1)]);
  check(all, "shuffled");
  std::vector<BF16> x(4096);
  for (int trial = 0; trial < 20; ++trial) {
    for (size_t i = 0; i < x.size(); ++i) {
      const double mag = std::ldexp(1.0, static_cast<int>(rng.Below(60)) - 40);
      x[i] = F32ToBf16(static_cast<float>(rng.Normal() * mag));
    }
    check(x, "random " + std::to_string(trial));
  }
}

}  // namespace
}  // namespace dsv4::kernels

namespace dsv4::kernels {
namespace {

// kF32 over BF16 storage gives the bits of kF32 over the promoted FP32 copy, on every ISA
// (and the reference agrees with itself across the two storages).
TEST(LinearF32OverBf16, EqualsThePromotedCopy) {
  Workspace ws;
  Rng rng(31);
  ThreadPool pool(2);
  ScopedFineSplit split;
  for (int trial = 0; trial < 10; ++trial) {
    const int64_t out = 1 + rng.Below(100), in = 1 + rng.Below(300), rows = 1 + rng.Below(5);
    std::vector<BF16> wb(static_cast<size_t>(out * in));
    for (auto& v : wb) v = F32ToBf16(static_cast<float>(rng.Normal()));
    std::vector<float> wf(wb.size()), x(static_cast<size_t>(rows * in));
    for (size_t i = 0; i < wb.size(); ++i) wf[i] = Bf16ToF32(wb[i]);
    for (auto& v : x) v = static_cast<float>(rng.Normal());
    LinearWeight promoted{LinearKind::kF32, out, in};
    promoted.f32 = wf.data();
    LinearWeight stored = promoted;
    stored.f32 = nullptr;
    stored.bf16 = wb.data();
    for (Isa isa : SupportedIsas()) {
      ScopedIsa scoped(isa);
      std::vector<float> a(static_cast<size_t>(rows * out)), b(a.size());
      LinearF32(pool, promoted, x.data(), rows, a.data(), &ws);
      LinearF32(pool, stored, x.data(), rows, b.data(), &ws);
      for (size_t i = 0; i < a.size(); ++i) {
        ASSERT_EQ(std::bit_cast<uint32_t>(a[i]), std::bit_cast<uint32_t>(b[i]))
            << IsaName(isa) << " trial " << trial << " element " << i;
      }
    }
  }
}

// The VDPBF16PS path of BF16-valued weights (linear_bf16_rows_avx512bf16.cpp) and, from
// kGemmMinRows rows, the FMA GEMM (linear_gemm_avx512.cpp) at decode row counts (odd ones,
// row-group tails, 64 and past it), inputs with slice tails and partial output tiles, through
// LinearBf16InF32 over kF32 stored as BF16 (the head's form) and Linear over kBf16: every ISA
// and GEMM choice gives the scalar bits, also where a weight or an input leaves the exact
// range (a subnormal or huge weight: that tile goes to the FP32 tiles; a tiny input: the
// whole call does).
TEST(LinearBf16Rows, EveryIsaMatchesScalarAtDecodeRowCounts) {
  ScopedFineSplit split;
  Rng rng(777);
  Workspace ws;
  ThreadPool pool(2);
  const int64_t row_counts[] = {2, 3, 7, 8, 9, 16, 17, 64, 65};
  for (int trial = 0; trial < 21; ++trial) {
    const int64_t rows = row_counts[trial % 9];
    const int64_t in = trial % 3 == 0 ? 544 : 32 * (1 + rng.Below(40));
    const int64_t out = 1 + rng.Below(70);
    std::vector<BF16> wb(static_cast<size_t>(out * in));
    for (auto& v : wb) v = F32ToBf16(static_cast<float>(rng.Normal() / std::sqrt(in)));
    std::vector<BF16> x = RandomInput(rows * in, rng);
    // 3: a subnormal weight, 4: a huge weight, 5: a tiny input, 6: one output's weights near
    // 2^-125 and every input x 2^-12, so its products fall below the normal range with more
    // bits than a subnormal keeps (an FMA would round them differently from the canonical
    // multiply-then-add: that tile must go to the FP32 tiles).
    const int mode = trial % 7;
    if (mode == 3) wb[rng.Below(out * in)] = BF16{0x0003};
    if (mode == 4) wb[rng.Below(out * in)] = F32ToBf16(3e35f);
    if (mode == 5) x[rng.Below(rows * in)] = F32ToBf16(1e-37f);
    if (mode == 6) {
      const int64_t o = rng.Below(out);
      for (int64_t k = 0; k < in; ++k) {
        wb[o * in + k] = F32ToBf16(std::ldexp(1.0f + rng.Below(128) / 128.0f, -125));
      }
      for (auto& v : x) v = F32ToBf16(std::ldexp(Bf16ToF32(v), -12));
    }
    LinearWeight head{LinearKind::kF32, out, in};
    head.bf16 = wb.data();
    LinearWeight plain{LinearKind::kBf16, out, in};
    plain.bf16 = wb.data();
    std::vector<std::vector<uint32_t>> f32_bits, bf16_bits;
    for (const LinearPath& path : LinearPaths()) {  // 8+ rows: the FMA GEMM or VDPBF16PS rows
      ScopedPath scoped(path);
      std::vector<float> y(static_cast<size_t>(rows * out));
      LinearBf16InF32(pool, head, x.data(), rows, y.data(), &ws);
      f32_bits.emplace_back(y.size());
      for (size_t i = 0; i < y.size(); ++i) f32_bits.back()[i] = std::bit_cast<uint32_t>(y[i]);
      std::vector<BF16> yb(static_cast<size_t>(rows * out));
      Linear(pool, plain, x.data(), rows, yb.data(), &ws);
      bf16_bits.emplace_back(yb.size());
      for (size_t i = 0; i < yb.size(); ++i) bf16_bits.back()[i] = yb[i].bits;
    }
    const std::string what = "trial " + std::to_string(trial) + " rows " +
                             std::to_string(rows) + " in " + std::to_string(in) + " out " +
                             std::to_string(out);
    ExpectAllEqual(f32_bits, "kF32 over BF16, " + what);
    ExpectAllEqual(bf16_bits, "kBf16, " + what);
  }
}

}  // namespace
}  // namespace dsv4::kernels
