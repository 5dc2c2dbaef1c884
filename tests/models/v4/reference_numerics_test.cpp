// Numeric building blocks of the reference forward: RoPE tables (spec §4.3, Appendix A, §17.1),
// RMS norms (§4.2), the Hadamard rotation (§4.7).
#include "models/v4/reference/numerics.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <vector>

#include "core/bf16.h"
#include "core/rng.h"
#include "checkpoint/presets.h"

namespace dsv4::v4::reference {
namespace {

std::vector<float> CompressedTable() { return RopeInvFreq(64, 160000, 16, 65536, 32, 1); }

TEST(ReferenceRopeTest, YarnRangeMatchesAppendixA) {
  const YarnRange r = YarnCorrectionRange(64, 160000, 65536, 32, 1);
  EXPECT_EQ(r.lo, 15);
  EXPECT_EQ(r.hi, 25);
  // θ = 10000 (what the vLLM bug would apply on SWA-only layers): lo 20, hi 33.
  const YarnRange plain = YarnCorrectionRange(64, 10000, 65536, 32, 1);
  EXPECT_EQ(plain.lo, 20);
  EXPECT_EQ(plain.hi, 33);
}

TEST(ReferenceRopeTest, CompressedTableMatchesAppendixA) {
  const std::vector<float> inv = CompressedTable();
  ASSERT_EQ(inv.size(), 32u);
  // g_k = 1 for k <= 15, 1/16 for k >= 25, 1 − (15/16)(k − 15)/10 in between.
  const double g_mid[] = {0.90625, 0.8125, 0.71875, 0.625, 0.53125, 0.4375, 0.34375, 0.25, 0.15625};
  for (int k = 0; k < 32; ++k) {
    const double plain = std::pow(160000.0, -k / 32.0);
    const double g = k <= 15 ? 1.0 : k >= 25 ? 1.0 / 16 : g_mid[k - 16];
    EXPECT_NEAR(inv[k], plain * g, plain * g * 2e-6) << "k " << k;
  }
  // The plain values Appendix A quotes.
  const std::vector<float> plain = RopeInvFreq(64, 160000, 16, 0, 32, 1);
  EXPECT_EQ(plain[0], 1.0f);
  EXPECT_NEAR(plain[8], 0.05, 0.05 * 1e-6);
  EXPECT_NEAR(plain[16], 2.5e-3, 2.5e-3 * 1e-6);
  EXPECT_NEAR(plain[24], 1.25e-4, 1.25e-4 * 1e-6);
  EXPECT_NEAR(plain[31], 9.0888e-6, 1e-10);
  EXPECT_NEAR(inv[24], 1.25e-4 * 0.15625, 1.25e-4 * 0.15625 * 2e-6);
}

TEST(ReferenceRopeTest, EachLayerKindGetsItsTable) {
  const checkpoint::ModelConfig c = checkpoint::TinyV4Config();  // ratios {0, 4, 128, 4, 128, 0 (MTP)}
  const std::vector<float> plain = RopeInvFreq(64, 10000, 1, 0, 0, 0);
  for (int k = 0; k < 32; ++k) {
    EXPECT_NEAR(plain[k], std::pow(10000.0, -k / 32.0), std::pow(10000.0, -k / 32.0) * 1e-6);
  }
  // SWA-only layers (0 and the MTP layer): θ = 10000 without YaRN (pitfall §15.1).
  EXPECT_EQ(LayerRopeInvFreq(c, 0), plain);
  EXPECT_EQ(LayerRopeInvFreq(c, 5), plain);
  EXPECT_NE(plain, RopeInvFreq(64, 10000, 16, 65536, 32, 1));
  // Compressed layers: θ = 160000 with YaRN, the same table for CSA and HCA (pitfall §15.2).
  for (int layer = 1; layer <= 4; ++layer) EXPECT_EQ(LayerRopeInvFreq(c, layer), CompressedTable());
}

TEST(ReferenceRopeTest, AngleIsAnFp32Product) {
  const std::vector<float> inv = CompressedTable();
  const int64_t pos = 999'999;
  int differing = 0;
  for (int k = 0; k < 32; ++k) {
    const float phi = RopeAngle(pos, inv[k]);
    EXPECT_EQ(phi, static_cast<float>(pos) * inv[k]);
    // An engine working in FP64 throughout (θ^(−2k/64) and the product) lands elsewhere.
    const double g = k <= 15 ? 1.0 : k >= 25 ? 1.0 / 16 : 1.0 - (15.0 / 16) * (k - 15) / 10;
    const double phi64 = static_cast<double>(pos) * std::pow(160000.0, -k / 32.0) * g;
    differing += phi != static_cast<float>(phi64);
  }
  EXPECT_GT(differing, 8);
  // ApplyRope uses exactly that angle: (1, 0) rotates to (bf16(cos φ), bf16(sin φ)).
  for (int k : {0, 1, 5}) {
    std::vector<float> x(64, 0.0f);
    x[2 * k] = 1.0f;
    ApplyRope(x, inv, pos, /*inverse=*/false);
    const float phi = static_cast<float>(pos) * inv[k];
    EXPECT_EQ(x[2 * k], RoundBf16(std::cos(phi))) << "k " << k;
    EXPECT_EQ(x[2 * k + 1], RoundBf16(std::sin(phi))) << "k " << k;
  }
}

TEST(ReferenceRopeTest, PairsAreInterleavedAndInverseIsTheConjugate) {
  const std::vector<float> inv = CompressedTable();
  std::vector<float> x(64, 0.0f);
  x[2] = 0.5f;  // pair 1 only: (x2, x3)
  x[3] = -0.25f;
  ApplyRope(x, inv, 7, /*inverse=*/false);
  for (int i = 0; i < 64; ++i) {
    if (i != 2 && i != 3) {
      EXPECT_EQ(x[i], 0.0f) << i;
    }
  }
  const float c = std::cos(7.0f * inv[1]), s = std::sin(7.0f * inv[1]);
  EXPECT_EQ(x[2], RoundBf16(0.5f * c - (-0.25f) * s));
  EXPECT_EQ(x[3], RoundBf16(0.5f * s + (-0.25f) * c));
  ApplyRope(x, inv, 7, /*inverse=*/true);
  EXPECT_NEAR(x[2], 0.5f, 4e-3);
  EXPECT_NEAR(x[3], -0.25f, 4e-3);
}

TEST(ReferenceNumericsTest, RmsNormIsFp32WithBf16Output) {
  const std::vector<float> x = {1.0f, -2.0f, 3.0f, 0.5f};
  const std::vector<float> w = {1.0f, 0.5f, 2.0f, 1.0f};
  const std::vector<float> y = RmsNorm(x, w, 1e-6f);
  const float r = 1.0f / std::sqrt((1.0f + 4.0f + 9.0f + 0.25f) / 4.0f + 1e-6f);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(y[i], RoundBf16(w[i] * (x[i] * r))) << i;
}

TEST(ReferenceNumericsTest, HeadNormUsesBf16Arithmetic) {
  Rng rng(3);
  std::vector<float> x(128);
  for (float& v : x) v = RoundBf16(static_cast<float>(3.0 * rng.Normal()));
  std::vector<float> y = x;
  HeadRmsNormBf16(y, 1e-6f);
  // Every intermediate of q.square().mean() + eps, rsqrt, multiply is a BF16 tensor.
  float sum = 0.0f;
  for (float v : x) sum += RoundBf16(v * v);
  const float r = RoundBf16(1.0f / std::sqrt(RoundBf16(RoundBf16(sum / 128.0f) + 1e-6f)));
  EXPECT_EQ(r, RoundBf16(r));
  double rms = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(y[i], RoundBf16(x[i] * r)) << i;
    rms += static_cast<double>(y[i]) * y[i];
  }
  EXPECT_NEAR(std::sqrt(rms / 128.0), 1.0, 0.01);  // no weight: unit RMS
}

TEST(ReferenceNumericsTest, HadamardIsNaturalOrderSylvester) {
  constexpr int kN = 128;
  const float scale = 1.0f / std::sqrt(128.0f);
  for (int j : {0, 1, 5, 64, 127}) {
    std::vector<float> x(kN, 0.0f);
    x[j] = 1.0f;
    HadamardBf16(x);
    for (int i = 0; i < kN; ++i) {
      const float sign = std::popcount(static_cast<unsigned>(i & j)) % 2 == 0 ? 1.0f : -1.0f;
      ASSERT_EQ(x[i], RoundBf16(sign * scale)) << "column " << j << " row " << i;
    }
  }
  // Orthonormal and symmetric: applying it twice gives x back (up to BF16 rounding).
  Rng rng(5);
  std::vector<float> x(kN);
  for (float& v : x) v = RoundBf16(static_cast<float>(rng.Normal()));
  std::vector<float> y = x;
  HadamardBf16(y);
  HadamardBf16(y);
  for (int i = 0; i < kN; ++i) EXPECT_NEAR(y[i], x[i], 0.02 * (1 + std::fabs(x[i]))) << i;
}

}  // namespace
}  // namespace dsv4::v4::reference
