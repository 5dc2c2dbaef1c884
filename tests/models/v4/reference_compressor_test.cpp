// Compressor, indexer and sink attention of the reference forward (spec §6.3, §7, §8,
// §17.3–17.4), on small random weights.
#include "models/v4/reference/compressor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <vector>

#include "core/bf16.h"
#include "core/quant.h"
#include "core/rng.h"
#include "models/v4/reference/attention.h"
#include "models/v4/reference/indexer.h"
#include "models/v4/reference/numerics.h"

namespace dsv4::v4::reference {
namespace {

constexpr int64_t kDim = 64;     // D
constexpr int64_t kWidth = 128;  // c: 64 FP8 dims + 64 RoPE dims

std::vector<float> RandomVector(Rng& rng, int64_t n, double std, bool bf16) {
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) {
    x = static_cast<float>(std * rng.Normal());
    if (bf16) x = RoundBf16(x);
  }
  return v;
}

CompressorWeights RandomCompressor(Rng& rng, int64_t ratio) {
  CompressorWeights cw;
  cw.ratio = ratio;
  cw.width = kWidth;
  const int64_t features = cw.kappa() * kWidth;
  const double std = 1.0 / std::sqrt(static_cast<double>(kDim));
  cw.wkv = {LinearMode::kF32, features, kDim, RandomVector(rng, features * kDim, std, true), {}};
  cw.wgate = {LinearMode::kF32, features, kDim, RandomVector(rng, features * kDim, std, true), {}};
  cw.ape = RandomVector(rng, ratio * features, 0.5, false);
  cw.norm = RandomVector(rng, kWidth, 0.05, true);
  for (float& w : cw.norm) w = RoundBf16(w + 1.0f);
  return cw;
}

EntryOptions Options(const std::vector<float>& inv_freq) {
  return {inv_freq, 1e-6f, EntryQuant::kFp8Nope};
}

// Which entries change when token p's input row is perturbed.
std::set<int64_t> ChangedEntries(const CompressorWeights& cw, std::vector<float> x,
                                 int64_t num_tokens, int64_t p, const EntryOptions& o) {
  const std::vector<float> base = CompressEntries(cw, x, num_tokens, o);
  for (int64_t d = 0; d < kDim; ++d) x[p * kDim + d] = RoundBf16(x[p * kDim + d] * -1.5f + 0.75f);
  const std::vector<float> moved = CompressEntries(cw, x, num_tokens, o);
  std::set<int64_t> changed;
  for (size_t i = 0; i < base.size(); ++i) {
    if (base[i] != moved[i]) changed.insert(static_cast<int64_t>(i) / kWidth);
  }
  return changed;
}

TEST(ReferenceCompressorTest, CsaEntryDependsOnTokens4iMinus4To4iPlus3) {
  Rng rng(11);
  const CompressorWeights cw = RandomCompressor(rng, 4);
  const std::vector<float> inv = RopeInvFreq(64, 160000, 16, 65536, 32, 1);
  constexpr int64_t kTokens = 26;  // 6 complete entries; tokens 24, 25 belong to none yet
  const std::vector<float> x = RandomVector(rng, kTokens * kDim, 1.0, true);
  ASSERT_EQ(CompressEntries(cw, x, kTokens, Options(inv)).size(), 6u * kWidth);
  for (int64_t p = 0; p < kTokens; ++p) {
    std::set<int64_t> expected;
    for (int64_t i = 0; i < 6; ++i) {
      if (4 * i - 4 <= p && p <= 4 * i + 3) expected.insert(i);
    }
    EXPECT_EQ(ChangedEntries(cw, x, kTokens, p, Options(inv)), expected) << "token " << p;
  }
}

TEST(ReferenceCompressorTest, HcaEntryDependsOnTokens128iTo128iPlus127) {
  Rng rng(12);
  const CompressorWeights cw = RandomCompressor(rng, 128);
  const std::vector<float> inv = RopeInvFreq(64, 160000, 16, 65536, 32, 1);
  constexpr int64_t kTokens = 300;  // entries 0 and 1; tokens 256..299 belong to none yet
  const std::vector<float> x = RandomVector(rng, kTokens * kDim, 1.0, true);
  for (int64_t p : {0, 77, 127, 128, 200, 255, 256, 299}) {
    std::set<int64_t> expected;
    if (p / 128 < 2) expected.insert(p / 128);
    EXPECT_EQ(ChangedEntries(cw, x, kTokens, p, Options(inv)), expected) << "token " << p;
  }
}

TEST(ReferenceCompressorTest, CsaEntryZeroHasNoPreviousWindow) {
  // Entry 0 is a softmax over tokens 0..3 of the second (current-window) half only: the missing
  // previous window has logits −∞, not 0. Entry 1 is one joint softmax over 8 candidates.
  Rng rng(13);
  constexpr int64_t kTokens = 8, kC = 3, kFeatures = 2 * kC;
  const std::vector<float> v = RandomVector(rng, kTokens * kFeatures, 1.0, false);
  const std::vector<float> z = RandomVector(rng, kTokens * kFeatures, 1.0, false);
  const std::vector<float> pooled = PoolEntries(v, z, kTokens, 4, kC, /*overlap=*/true);
  ASSERT_EQ(pooled.size(), 2u * kC);
  for (int64_t f = 0; f < kC; ++f) {
    double num = 0, den = 0;
    for (int64_t p = 0; p < 4; ++p) {
      den += std::exp(static_cast<double>(z[p * kFeatures + kC + f]));
      num += std::exp(static_cast<double>(z[p * kFeatures + kC + f])) * v[p * kFeatures + kC + f];
    }
    EXPECT_NEAR(pooled[f], num / den, 1e-5) << "entry 0 feature " << f;
    num = den = 0;
    for (int64_t p = 0; p < 8; ++p) {
      const int64_t col = (p < 4 ? 0 : kC) + f;  // previous window: first half
      den += std::exp(static_cast<double>(z[p * kFeatures + col]));
      num += std::exp(static_cast<double>(z[p * kFeatures + col])) * v[p * kFeatures + col];
    }
    EXPECT_NEAR(pooled[kC + f], num / den, 1e-5) << "entry 1 feature " << f;
  }
}

TEST(ReferenceCompressorTest, EntryIsRotatedAtTheFirstTokenOfItsWindow) {
  Rng rng(14);
  const std::vector<float> inv = RopeInvFreq(64, 160000, 16, 65536, 32, 1);
  for (int64_t ratio : {4, 128}) {
    const CompressorWeights cw = RandomCompressor(rng, ratio);
    const int64_t tokens = 3 * ratio;
    const std::vector<float> x = RandomVector(rng, tokens * kDim, 1.0, true);
    const std::vector<float> entries = CompressEntries(cw, x, tokens, Options(inv));
    std::vector<float> v, z;
    ProjectTokens(cw, x, tokens, &v, &z);
    const std::vector<float> pooled = PoolEntries(v, z, tokens, ratio, kWidth, cw.overlap());
    for (int64_t i = 0; i < 3; ++i) {
      // §7.5 by hand with RoPE at position pos; only pos = m·i reproduces the entry.
      auto finish = [&](int64_t pos) {
        std::vector<float> e(pooled.begin() + i * kWidth, pooled.begin() + (i + 1) * kWidth);
        RoundToBf16(e);
        e = RmsNorm(e, cw.norm, 1e-6f);
        ApplyRope(std::span<float>(e).subspan(64), inv, pos, false);
        Fp8SimulateBf16(std::span<float>(e).first(64), kFp8KvBlock);
        return e;
      };
      const std::vector<float> got(entries.begin() + i * kWidth,
                                   entries.begin() + (i + 1) * kWidth);
      EXPECT_EQ(got, finish(ratio * i)) << "ratio " << ratio << " entry " << i;
      if (i > 0) {
        EXPECT_NE(got, finish(i)) << "ratio " << ratio << " entry " << i;
      }
    }
  }
}

TEST(ReferenceCompressorTest, EntriesLandOnTheirQuantisationGrids) {
  Rng rng(15);
  const std::vector<float> inv = RopeInvFreq(64, 160000, 16, 65536, 32, 1);
  const CompressorWeights cw = RandomCompressor(rng, 4);
  const std::vector<float> x = RandomVector(rng, 16 * kDim, 1.0, true);
  for (EntryQuant q : {EntryQuant::kFp8Nope, EntryQuant::kHadamardFp4}) {
    const std::vector<float> entries = CompressEntries(cw, x, 16, {inv, 1e-6f, q});
    for (size_t i = 0; i < entries.size(); i += kWidth) {
      std::vector<float> e(entries.begin() + i, entries.begin() + i + kWidth);
      std::vector<float> again = e;
      if (q == EntryQuant::kFp8Nope) {
        Fp8SimulateBf16(std::span<float>(again).first(64), kFp8KvBlock);
      } else {
        Fp4SimulateBf16(again);
      }
      EXPECT_EQ(again, e) << "simulation is idempotent on its own grid";
      for (float v : e) EXPECT_EQ(v, RoundBf16(v));
    }
  }
}

TEST(ReferenceIndexerTest, VisibilityAndTopKTies) {
  for (int64_t t = 0; t < 20; ++t) EXPECT_EQ(NumVisibleEntries(t, 4), (t + 1) / 4) << t;
  EXPECT_EQ(NumVisibleEntries(126, 128), 0);
  EXPECT_EQ(NumVisibleEntries(127, 128), 1);
  const std::vector<float> scores = {1.0f, 3.0f, 3.0f, 2.0f, 3.0f, -1.0f};
  EXPECT_EQ(TopKIndices(scores, 2), (std::vector<int64_t>{1, 2}));  // ties: lower index first
  EXPECT_EQ(TopKIndices(scores, 4), (std::vector<int64_t>{1, 2, 3, 4}));
  EXPECT_EQ(TopKIndices(scores, 10), (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_TRUE(TopKIndices({}, 8).empty());
}

TEST(ReferenceIndexerTest, ScoreIsReluWeightedHeadSumInBf16) {
  // Two heads of dim 2. Head 0: q·k = 1.5·0.5 + 0.25·1 = 1.0; head 1: negative → ReLU 0.
  const std::vector<float> q = {1.5f, 0.25f, -1.0f, -1.0f};
  const std::vector<float> key = {0.5f, 1.0f};
  EXPECT_EQ(IndexScore(q, std::vector<float>{0.75f, 100.0f}, key), 0.75f);
  // Each head's product is a BF16 tensor element before the head sum: five heads with
  // q·k = 1.25 and w = bf16(0.3) give 1.875; summing unrounded products would give 1.8828125.
  std::vector<float> q5;
  for (int h = 0; h < 5; ++h) q5.insert(q5.end(), {2.0f, 0.25f});
  const std::vector<float> w5(5, RoundBf16(0.3f));
  EXPECT_EQ(IndexScore(q5, w5, key), 1.875f);
  // q·k itself is rounded to BF16: 1 + 2^-10 is not a BF16 value.
  const std::vector<float> q3 = {1.0f, 0x1p-10f};
  EXPECT_EQ(IndexScore(q3, std::vector<float>{1.0f}, std::vector<float>{1.0f, 1.0f}), 1.0f);
}

TEST(ReferenceAttentionTest, SinkOnlyEntersTheDenominator) {
  const std::vector<float> q = {1.0f, 0.0f, 0.5f, -0.5f};
  const std::vector<float> k0 = {0.5f, 1.0f, -1.0f, 2.0f};
  const std::vector<float> k1 = {-0.25f, 0.5f, 1.5f, 0.0f};
  const std::vector<const float*> rows = {k0.data(), k1.data()};
  const float scale = 0.5f, sink = 0.3f;
  const std::vector<float> o = SinkAttention(q, rows, sink, scale);
  const float s0 = (0.5f - 0.5f - 1.0f) * scale, s1 = (-0.25f + 0.75f) * scale;
  const float mx = std::max(s0, s1);
  const float e0 = std::exp(s0 - mx), e1 = std::exp(s1 - mx);
  const float den = e0 + e1 + std::exp(sink - mx);  // sink not scaled
  for (int d = 0; d < 4; ++d) {
    const float num = RoundBf16(e0) * k0[d] + RoundBf16(e1) * k1[d];
    EXPECT_EQ(o[d], RoundBf16(num / den)) << d;
  }
  // A sink of −∞ leaves plain softmax attention: one entry returns its value exactly.
  const std::vector<const float*> one = {k1.data()};
  EXPECT_EQ(SinkAttention(q, one, -INFINITY, scale), k1);
}

}  // namespace
}  // namespace dsv4::v4::reference
