// MoE of the reference forward (spec §10, §15.8, §17.6): routing, clamp, weight placement,
// shared expert clamped like the routed ones (§10.3 revision note), combine order.
#include "models/v4/reference/moe.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/bf16.h"
#include "core/fp8.h"
#include "core/quant.h"
#include "core/rng.h"
#include "checkpoint/presets.h"

namespace dsv4::v4::reference {
namespace {

constexpr int64_t kDim = 128, kInter = 128;

std::vector<float> RandomBf16(Rng& rng, int64_t n, double std) {
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = RoundBf16(static_cast<float>(std * rng.Normal()));
  return v;
}

// An FP8 linear with random weights of the given spread (so FP8 act-quant is in play).
Linear RandomFp8(Rng& rng, int64_t out, int64_t in, double std) {
  std::vector<float> w(static_cast<size_t>(out * in));
  for (float& v : w) v = static_cast<float>(std * rng.Normal());
  std::vector<uint8_t> codes(w.size());
  std::vector<uint8_t> scales(static_cast<size_t>(((out + 127) / 128) * ((in + 127) / 128)));
  QuantizeFp8Block128(w, out, in, codes, scales);
  Linear l{LinearMode::kFp8, out, in, std::vector<float>(codes.size()), {}};
  for (size_t i = 0; i < codes.size(); ++i) l.w[i] = E4M3ToF32(codes[i]);
  for (uint8_t s : scales) l.scale.push_back(E8M0ToF32(s));
  return l;
}

ExpertWeights RandomExpert(Rng& rng, double std) {
  return {RandomFp8(rng, kInter, kDim, std), RandomFp8(rng, kInter, kDim, std),
          RandomFp8(rng, kDim, kInter, 1.0 / std::sqrt(kInter))};
}

// The expert written out: optional clamp, weight applied to h before w2.
std::vector<float> ManualExpert(const ExpertWeights& e, const std::vector<float>& x, float g,
                                float limit) {
  const std::vector<float> a = Apply(e.w1, x), b = Apply(e.w3, x);
  std::vector<float> h(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    float gate = a[i], up = b[i];
    if (limit > 0) {
      gate = std::min(gate, limit);
      up = std::max(-limit, std::min(up, limit));
    }
    h[i] = RoundBf16(g * (gate / (1.0f + std::exp(-gate)) * up));
  }
  return Apply(e.w2, h);
}

TEST(ReferenceMoeTest, ExpertClampsAndWeightsBeforeW2) {
  Rng rng(31);
  // Large w1/w3 so that |a|, |b| exceed the limit of 10 for many features.
  const ExpertWeights e = RandomExpert(rng, 1.5);
  const std::vector<float> x = RandomBf16(rng, kDim, 1.0);
  const std::vector<float> a = Apply(e.w1, x), b = Apply(e.w3, x);
  int64_t above = 0;
  for (size_t i = 0; i < a.size(); ++i) above += a[i] > 10 || std::fabs(b[i]) > 10;
  ASSERT_GT(above, 0) << "weights too small to exercise the clamp";

  const float g = 0.37f;
  const std::vector<float> y = ExpertForward(e, x, g, 10.0f);
  EXPECT_EQ(y, ManualExpert(e, x, g, 10.0f));
  EXPECT_NE(y, ManualExpert(e, x, g, 0.0f));  // the clamp matters here
  // Weighting after w2 instead (the V3 placement) is not the same, because w2 re-quantises.
  const std::vector<float> unweighted = ExpertForward(e, x, 1.0f, 10.0f);
  int64_t differs = 0;
  for (size_t i = 0; i < y.size(); ++i) differs += y[i] != RoundBf16(g * unweighted[i]);
  EXPECT_GT(differs, 0);
}

MoeWeights RandomMoe(Rng& rng, int64_t num_experts, bool with_shared) {
  MoeWeights mw;
  mw.gate = {LinearMode::kF32,
             num_experts,
             kDim,
             RandomBf16(rng, num_experts * kDim, 1.0 / std::sqrt(kDim)),
             {}};
  mw.bias.assign(static_cast<size_t>(num_experts), 0.0f);
  for (int64_t e = 0; e < num_experts; ++e) mw.experts.push_back(RandomExpert(rng, 1.5));
  mw.has_shared = with_shared;
  if (with_shared) mw.shared = RandomExpert(rng, 1.5);
  return mw;
}

checkpoint::ModelConfig MoeConfig(int64_t num_experts, int64_t k, double scale) {
  checkpoint::ModelConfig c = checkpoint::TinyV4Config();
  c.hidden_size = kDim;
  c.n_routed_experts = num_experts;
  c.num_experts_per_tok = k;
  c.routed_scaling_factor = scale;
  c.swiglu_limit = 10.0;
  return c;
}

TEST(ReferenceMoeTest, BiasSelectsButDoesNotWeight) {
  Rng rng(32);
  const checkpoint::ModelConfig c = MoeConfig(8, 2, 1.5);
  MoeWeights mw = RandomMoe(rng, 8, false);
  const std::vector<float> x = RandomBf16(rng, kDim, 1.0);
  const std::vector<float> logits = Apply(mw.gate, x);
  std::vector<float> sigma(8);
  for (int e = 0; e < 8; ++e) {
    const float sp = logits[e] > 20 ? logits[e] : std::log1p(std::exp(logits[e]));
    sigma[e] = std::sqrt(sp);
  }
  // Push the two lowest-σ experts to the top with the bias.
  std::vector<int64_t> order = {0, 1, 2, 3, 4, 5, 6, 7};
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return sigma[a] < sigma[b]; });
  mw.bias[order[0]] = 100.0f;
  mw.bias[order[1]] = 50.0f;
  const Routing r = Route(c, mw, x, 0);
  ASSERT_EQ(r.experts, (std::vector<int64_t>{order[0], order[1]}));  // descending biased score
  const float sum = sigma[order[0]] + sigma[order[1]];
  EXPECT_FLOAT_EQ(r.weights[0], sigma[order[0]] / sum * 1.5f);
  EXPECT_FLOAT_EQ(r.weights[1], sigma[order[1]] / sum * 1.5f);
}

TEST(ReferenceMoeTest, RoutingTiesGoToTheLowerExpertId) {
  Rng rng(33);
  const checkpoint::ModelConfig c = MoeConfig(8, 2, 1.0);
  MoeWeights mw = RandomMoe(rng, 8, false);
  std::fill(mw.gate.w.begin(), mw.gate.w.end(), 0.0f);  // every σ equal
  const std::vector<float> x = RandomBf16(rng, kDim, 1.0);
  const Routing r = Route(c, mw, x, 0);
  EXPECT_EQ(r.experts, (std::vector<int64_t>{0, 1}));
  EXPECT_FLOAT_EQ(r.weights[0], 0.5f);
}

TEST(ReferenceMoeTest, HashLayersUseTheTokenRow) {
  Rng rng(34);
  const checkpoint::ModelConfig c = MoeConfig(8, 2, 2.0);
  MoeWeights mw = RandomMoe(rng, 8, false);
  mw.hash = true;
  mw.bias.clear();
  mw.tid2eid.assign(static_cast<size_t>(c.vocab_size * 2), 0);
  mw.tid2eid[2 * 17] = 6;  // token 17 → experts {6, 3}, in that order
  mw.tid2eid[2 * 17 + 1] = 3;
  const std::vector<float> x = RandomBf16(rng, kDim, 1.0);
  const Routing r = Route(c, mw, x, 17);
  EXPECT_EQ(r.experts, (std::vector<int64_t>{6, 3}));
  EXPECT_NEAR(r.weights[0] + r.weights[1], 2.0f, 1e-6);
}

TEST(ReferenceMoeTest, CombineAddsRoutedExpertsByIdThenTheClampedSharedExpert) {
  Rng rng(35);
  const checkpoint::ModelConfig c = MoeConfig(8, 3, 1.5);
  MoeWeights mw = RandomMoe(rng, 8, true);
  const std::vector<float> x = RandomBf16(rng, kDim, 1.0);
  const Routing r = Route(c, mw, x, 0);
  Routing seen;
  const std::vector<float> y = MoeForward(c, mw, x, 0, &seen);
  EXPECT_EQ(seen.experts, r.experts);
  std::vector<int64_t> by_id(r.experts.size());
  for (size_t j = 0; j < by_id.size(); ++j) by_id[j] = static_cast<int64_t>(j);
  std::sort(by_id.begin(), by_id.end(),
            [&](int64_t a, int64_t b) { return r.experts[a] < r.experts[b]; });
  std::vector<float> acc(kDim, 0.0f);
  for (int64_t j : by_id) {
    const std::vector<float> ye = ManualExpert(mw.experts[r.experts[j]], x, r.weights[j], 10.0f);
    for (int64_t d = 0; d < kDim; ++d) acc[d] += ye[d];
  }
  const std::vector<float> shared = ManualExpert(mw.shared, x, 1.0f, 10.0f);
  ASSERT_NE(shared, ManualExpert(mw.shared, x, 1.0f, 0.0f)) << "shared clamp not exercised";
  for (int64_t d = 0; d < kDim; ++d) EXPECT_EQ(y[d], RoundBf16(acc[d] + shared[d])) << d;
}

}  // namespace
}  // namespace dsv4::v4::reference
