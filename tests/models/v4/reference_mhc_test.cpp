// mHC of the reference forward (spec §5, §17.2): Sinkhorn schedule and sums, HC_pre / HC_post /
// HC_head mixing rules.
#include "models/v4/reference/mhc.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/bf16.h"
#include "core/rng.h"
#include "models/v4/reference/numerics.h"

namespace dsv4::v4::reference {
namespace {

constexpr float kEps = 1e-6f;

std::vector<float> RandomLogits(Rng& rng, int n, double std) {
  std::vector<float> m(static_cast<size_t>(n));
  for (float& v : m) v = static_cast<float>(std * rng.Normal());
  return m;
}

TEST(ReferenceMhcTest, SinkhornRunsOneSoftmaxNineteenRowAndTwentyColumnSteps) {
  Rng rng(1);
  std::vector<float> m = RandomLogits(rng, 16, 1.0);
  SinkhornOpCounts counts;
  Sinkhorn(m, 4, 20, kEps, &counts);
  EXPECT_EQ(counts.softmax, 1);
  EXPECT_EQ(counts.row, 19);
  EXPECT_EQ(counts.col, 20);
  std::vector<float> m1 = RandomLogits(rng, 16, 1.0);
  Sinkhorn(m1, 4, 1, kEps, &counts);
  EXPECT_EQ(counts.softmax, 1);
  EXPECT_EQ(counts.row, 0);
  EXPECT_EQ(counts.col, 1);
}

TEST(ReferenceMhcTest, SinkhornWithOneIterationIsSoftmaxThenColumnNormalisation) {
  Rng rng(2);
  const std::vector<float> logits = RandomLogits(rng, 16, 2.0);
  std::vector<float> c = logits;
  Sinkhorn(c, 4, 1, kEps);
  // Written out: row softmax, + eps, then divide by (column sum + eps). No row step at the end.
  float expected[16];
  for (int j = 0; j < 4; ++j) {
    float mx = logits[j * 4];
    for (int k = 1; k < 4; ++k) mx = std::max(mx, logits[j * 4 + k]);
    float sum = 0.0f;
    for (int k = 0; k < 4; ++k) sum += std::exp(logits[j * 4 + k] - mx);
    for (int k = 0; k < 4; ++k) expected[j * 4 + k] = std::exp(logits[j * 4 + k] - mx) / sum + kEps;
  }
  for (int k = 0; k < 4; ++k) {
    float col = 0.0f;
    for (int j = 0; j < 4; ++j) col += expected[j * 4 + k];
    for (int j = 0; j < 4; ++j) expected[j * 4 + k] /= col + kEps;
  }
  for (int i = 0; i < 16; ++i) EXPECT_FLOAT_EQ(c[i], expected[i]) << i;
}

TEST(ReferenceMhcTest, SinkhornGivesANearlyDoublyStochasticMatrix) {
  Rng rng(3);
  double worst_row = 0.0;
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<float> c = RandomLogits(rng, 16, 1.5);
    Sinkhorn(c, 4, 20, kEps);
    for (int i = 0; i < 4; ++i) {
      float row = 0.0f, col = 0.0f;
      for (int k = 0; k < 4; ++k) {
        row += c[i * 4 + k];
        col += c[k * 4 + i];
      }
      // The last step normalises columns: exact up to eps and rounding. Rows converge (20
      // iterations leave up to ~1e-3 on sharply peaked logits).
      EXPECT_NEAR(col, 1.0f, 1e-5) << "trial " << trial;
      EXPECT_NEAR(row, 1.0f, 5e-3) << "trial " << trial;
      worst_row = std::max(worst_row, std::fabs(row - 1.0));
    }
  }
  EXPECT_GT(worst_row, 0.0);  // rows are not normalised last
}

// Parameters whose projection is zero, so the mixes are exactly base (μ = 0).
HcParams ZeroProjection(int64_t num_mix, int64_t width, std::vector<float> base,
                        std::vector<float> scale) {
  return {std::vector<float>(static_cast<size_t>(num_mix * width), 0.0f), std::move(base),
          std::move(scale)};
}

TEST(ReferenceMhcTest, HcPreWeightsAreSigmoidPlusEpsAndNotNormalised) {
  constexpr int64_t kHc = 4, kDim = 8;
  std::vector<float> base(24);
  for (int i = 0; i < 24; ++i) base[i] = 0.3f * static_cast<float>(i % 7) - 0.9f;
  const HcParams p = ZeroProjection(24, kHc * kDim, base, {1.0f, 1.0f, 1.0f});
  std::vector<float> x(kHc * kDim);
  for (int j = 0; j < kHc; ++j) {
    for (int d = 0; d < kDim; ++d) x[j * kDim + d] = RoundBf16(0.5f * (j + 1) - 0.125f * d);
  }
  HcMix mix;
  const std::vector<float> u = HcPre(x, p, {.hc = kHc, .sinkhorn_iters = 20}, &mix);
  for (int d = 0; d < kDim; ++d) {
    float acc = 0.0f;
    for (int j = 0; j < kHc; ++j) acc += (Sigmoid(base[j]) + kEps) * x[j * kDim + d];
    EXPECT_EQ(u[d], RoundBf16(acc)) << d;
  }
  for (int j = 0; j < kHc; ++j) EXPECT_FLOAT_EQ(mix.post[j], 2.0f * Sigmoid(base[4 + j]));
  std::vector<float> comb(base.begin() + 8, base.end());
  Sinkhorn(comb, kHc, 20, kEps);
  for (int i = 0; i < 16; ++i) EXPECT_EQ(mix.comb[i], comb[i]) << i;
}

TEST(ReferenceMhcTest, HcPostMixesOldStreamsWithColumnsOfC) {
  constexpr int64_t kHc = 4, kDim = 3;
  HcMix mix;
  mix.post = {0.5f, 1.0f, 1.5f, 2.0f};
  // Deliberately non-symmetric so that using rows instead of columns is visible.
  mix.comb = {0.7f, 0.1f, 0.1f, 0.1f,  //
              0.0f, 0.6f, 0.2f, 0.2f,  //
              0.3f, 0.0f, 0.5f, 0.2f,  //
              0.0f, 0.3f, 0.2f, 0.5f};
  const std::vector<float> f = {1.0f, -2.0f, 0.25f};
  std::vector<float> x = {1, 2, 3, 10, 20, 30, -1, -2, -3, 0.5f, 0.25f, 0.125f};
  const std::vector<float> old = x;
  HcPost(f, x, mix, kHc);
  for (int k = 0; k < kHc; ++k) {
    for (int d = 0; d < kDim; ++d) {
      float mixed = 0.0f;
      for (int j = 0; j < kHc; ++j) mixed += mix.comb[j * kHc + k] * old[j * kDim + d];
      EXPECT_EQ(x[k * kDim + d], RoundBf16(mix.post[k] * f[d] + mixed)) << k << "," << d;
    }
  }
}

TEST(ReferenceMhcTest, HcHeadUsesRmsNormalisedMixes) {
  constexpr int64_t kHc = 4, kDim = 4;
  // fn picks x̄[0] for every head weight, so ν_j = x̄[0] · ρ.
  HcParams p = ZeroProjection(kHc, kHc * kDim, {0.1f, -0.2f, 0.3f, 0.0f}, {0.5f});
  for (int j = 0; j < kHc; ++j) p.fn[j * kHc * kDim] = 1.0f;
  std::vector<float> x(kHc * kDim);
  for (size_t i = 0; i < x.size(); ++i) x[i] = RoundBf16(0.25f * static_cast<float>(i) - 1.0f);
  float sum_sq = 0.0f;
  for (float v : x) sum_sq += v * v;
  const float rho = 1.0f / std::sqrt(sum_sq / 16.0f + 1e-6f);
  const std::vector<float> h = HcHead(x, p, {.hc = kHc});
  for (int d = 0; d < kDim; ++d) {
    float acc = 0.0f;
    for (int j = 0; j < kHc; ++j) {
      acc += (Sigmoid(x[0] * rho * 0.5f + p.base[j]) + kEps) * x[j * kDim + d];
    }
    EXPECT_EQ(h[d], RoundBf16(acc)) << d;
  }
}

}  // namespace
}  // namespace dsv4::v4::reference
