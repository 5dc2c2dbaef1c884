// FP8 linears with F32 tile scales (V3.2 `weight_scale_inv`): the same block formula as E8M0
// scales, fast vs reference, and agreement with a plain dot product of dequantised values.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/fp8.h"
#include "core/quant.h"
#include "core/rng.h"
#include "kernels/cpu/linear.h"
#include "kernels/ref/linear_ref.h"

namespace dsv4::kernels {
namespace {

struct Fp8Linear {
  std::vector<uint8_t> codes;  // e4m3 [out, in]
  std::vector<uint8_t> e8m0;   // [ceil(out/128), ceil(in/128)]
  std::vector<float> f32;      // same grid
  LinearWeight w;
};

// Random finite codes; F32 scales either the E8M0 powers of two or arbitrary positive floats.
Fp8Linear MakeFp8(int64_t out, int64_t in, bool pow2, Rng& rng) {
  Fp8Linear l;
  l.codes.resize(static_cast<size_t>(out * in));
  for (auto& c : l.codes) {
    do c = static_cast<uint8_t>(rng.Below(256));
    while ((c & 0x7F) == 0x7F);
  }
  const size_t grid = static_cast<size_t>(((out + 127) / 128) * ((in + 127) / 128));
  l.e8m0.resize(grid);
  l.f32.resize(grid);
  for (size_t i = 0; i < grid; ++i) {
    l.e8m0[i] = static_cast<uint8_t>(118 + rng.Below(4));
    l.f32[i] = pow2 ? E8M0ToF32(l.e8m0[i]) : static_cast<float>(rng.Uniform(1e-3, 4e-3));
  }
  l.w = {LinearKind::kFp8Block, out, in, l.codes.data(), l.e8m0.data()};
  l.w.scales_f32 = l.f32.data();
  return l;
}

std::vector<BF16> RandomInput(int64_t n, Rng& rng) {
  std::vector<BF16> x(static_cast<size_t>(n));
  for (auto& v : x) v = F32ToBf16(static_cast<float>(rng.Normal() * std::exp(rng.Uniform(-2, 2))));
  return x;
}

TEST(LinearScaleF32, PowerOfTwoScalesGiveTheE8m0ResultBitForBit) {
  Workspace ws;
  Rng rng(11);
  ThreadPool pool(2);
  const int64_t out = 200, in = 384, rows = 3;
  Fp8Linear l = MakeFp8(out, in, /*pow2=*/true, rng);
  LinearWeight e8m0_only = l.w;
  e8m0_only.scales_f32 = nullptr;
  const std::vector<BF16> x = RandomInput(rows * in, rng);
  std::vector<BF16> a(rows * out), b(rows * out), c(rows * out), d(rows * out);
  Linear(pool, l.w, x.data(), rows, a.data(), &ws);
  Linear(pool, e8m0_only, x.data(), rows, b.data(), &ws);
  ref::Linear(l.w, x.data(), rows, c.data());
  ref::Linear(e8m0_only, x.data(), rows, d.data());
  for (int64_t i = 0; i < rows * out; ++i) {
    ASSERT_EQ(a[i].bits, b[i].bits) << i;
    ASSERT_EQ(c[i].bits, d[i].bits) << i;
  }
}

TEST(LinearScaleF32, F32ScalesReplaceE8m0AndMatchDequantisedMath) {
  Workspace ws;
  Rng rng(12);
  ThreadPool pool(2);
  for (int trial = 0; trial < 6; ++trial) {
    const int64_t in = 128 * (1 + rng.Below(3)), out = 1 + rng.Below(300), rows = 1 + rng.Below(4);
    Fp8Linear l = MakeFp8(out, in, /*pow2=*/false, rng);
    const std::vector<BF16> x = RandomInput(rows * in, rng);
    std::vector<BF16> fast(rows * out), ref_y(rows * out);
    Linear(pool, l.w, x.data(), rows, fast.data(), &ws);
    ref::Linear(l.w, x.data(), rows, ref_y.data());
    // Expected: FP8-quantised input (per 128, pow2 scales) times the F32-dequantised weights,
    // in double. A wrong scale (E8M0 instead of F32, wrong tile) is off by far more.
    std::vector<uint8_t> qx(static_cast<size_t>(in));
    std::vector<float> sx(static_cast<size_t>(in / 128));
    const int64_t cols = (in + 127) / 128;
    for (int64_t r = 0; r < rows; ++r) {
      ActQuantFp8({x.data() + r * in, static_cast<size_t>(in)}, kFp8ActBlock, qx, sx);
      for (int64_t n = 0; n < out; ++n) {
        double want = 0, mag = 0;
        for (int64_t k = 0; k < in; ++k) {
          const double term = static_cast<double>(E4M3ToF32(qx[k])) * sx[k / 128] *
                              E4M3ToF32(l.codes[n * in + k]) * l.f32[(n / 128) * cols + k / 128];
          want += term;
          mag += std::abs(term);
        }
        const float a = Bf16ToF32(fast[r * out + n]), b = Bf16ToF32(ref_y[r * out + n]);
        const double tol = std::abs(want) * 8e-3 + mag * 1e-6 + 1e-30;
        EXPECT_NEAR(a, want, tol) << "trial " << trial << " r " << r << " n " << n;
        EXPECT_NEAR(b, want, tol) << "trial " << trial << " r " << r << " n " << n;
      }
    }
  }
}

}  // namespace
}  // namespace dsv4::kernels
