// Spec §17 conformance checks on the fast path's building blocks.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include <gtest/gtest.h>

#include "checkpoint/presets.h"
#include "core/quant.h"
#include "core/rng.h"
#include "models/common/hadamard.h"
#include "models/v4/compressor.h"
#include "models/v4/mhc.h"
#include "models/v4/moe.h"
#include "models/v4/rope.h"

namespace dsv4::v4 {
namespace {

TEST(V4Rope, CompressedLayersUseYarnTableOfAppendixA) {
  const checkpoint::ModelConfig c = checkpoint::PresetConfig("v4-flash").value();
  double lo = 0, hi = 0;
  YarnRange(64, 160000, c.yarn, &lo, &hi);
  EXPECT_EQ(lo, 15);
  EXPECT_EQ(hi, 25);
  YarnRange(64, 10000, c.yarn, &lo, &hi);  // what the vLLM bug would have used
  EXPECT_EQ(lo, 20);
  EXPECT_EQ(hi, 33);
  const RopeTable csa = RopeTable::ForLayer(c, 2), swa = RopeTable::ForLayer(c, 0);
  const double g[] = {0.90625, 0.8125, 0.71875, 0.625, 0.53125, 0.4375, 0.34375, 0.25, 0.15625};
  for (int k = 0; k < 32; ++k) {
    const double plain = std::pow(160000.0, -k / 32.0);
    const double gk = k <= 15 ? 1.0 : (k >= 25 ? 1.0 / 16 : g[k - 16]);
    EXPECT_NEAR(csa.inv_freq()[k], plain * gk, plain * gk * 1e-5) << k;
    EXPECT_NEAR(swa.inv_freq()[k], std::pow(10000.0, -k / 32.0), 1e-6 * std::pow(10000.0, -k / 32.0));
  }
  EXPECT_NEAR(csa.inv_freq()[8], 0.05, 1e-7);
  // The MTP layer (ratio 0) uses the plain table too.
  EXPECT_EQ(RopeTable::ForLayer(c, 43).inv_freq(), swa.inv_freq());
}

TEST(V4Rope, AngleIsAnFp32ProductAndInverseUndoes) {
  const RopeTable t(64, 160000, checkpoint::PresetConfig("v4-flash").value().yarn);
  std::vector<BF16> x(64), y(64);
  Rng rng(5);
  for (auto& v : x) v = F32ToBf16(static_cast<float>(rng.Normal()));
  y = x;
  t.Apply(y.data(), 1000000, false);
  // Pair 0 rotates by fp32(1e6) * 1.0 = 1e6 rad.
  const float c = static_cast<float>(std::cos(1e6)), s = static_cast<float>(std::sin(1e6));
  EXPECT_EQ(y[0].bits, F32ToBf16(Bf16ToF32(x[0]) * c - Bf16ToF32(x[1]) * s).bits);
  t.Apply(y.data(), 1000000, true);
  for (int i = 0; i < 64; ++i) EXPECT_NEAR(Bf16ToF32(y[i]), Bf16ToF32(x[i]), 0.02 + 0.02 * std::abs(Bf16ToF32(x[i])));
}

// ApplyHeads (cos/sin formed once for all heads at a position) gives the bits of Apply on
// each head, forward and inverse.
TEST(V4Rope, ApplyHeadsMatchesApplyPerHead) {
  const RopeTable t(64, 160000, checkpoint::PresetConfig("v4-flash").value().yarn);
  const int64_t heads = 5, stride = 96;  // rotated part at offset 32 of each 96-wide head
  Rng rng(7);
  std::vector<BF16> x(heads * stride);
  for (auto& v : x) v = F32ToBf16(static_cast<float>(rng.Normal()));
  for (bool inverse : {false, true}) {
    for (int64_t pos : {0, 7, 4097, 1000000}) {
      std::vector<BF16> a = x, b = x;
      for (int64_t h = 0; h < heads; ++h) t.Apply(a.data() + h * stride + 32, pos, inverse);
      t.ApplyHeads(b.data() + 32, heads, stride, pos, inverse);
      for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a[i].bits, b[i].bits) << pos << " " << i;
    }
  }
}

TEST(V4Mhc, SinkhornOperationOrderAndSums) {
  Rng rng(6);
  for (int trial = 0; trial < 20; ++trial) {
    float m[16];
    for (float& v : m) v = static_cast<float>(rng.Normal());
    float one[16];
    std::copy(m, m + 16, one);
    Sinkhorn(m, 4, 20, 1e-6f);
    for (int k = 0; k < 4; ++k) {  // last op is a column normalisation
      float col = 0, row = 0;
      for (int j = 0; j < 4; ++j) col += m[j * 4 + k], row += m[k * 4 + j];
      EXPECT_NEAR(col, 1.0f, 1e-5f);
      EXPECT_NEAR(row, 1.0f, 1e-3f);
    }
    // One iteration = row softmax + eps, then one column normalisation, by hand.
    float want[16];
    for (int j = 0; j < 4; ++j) {
      float mx = -INFINITY, s = 0;
      for (int k = 0; k < 4; ++k) mx = std::max(mx, one[j * 4 + k]);
      for (int k = 0; k < 4; ++k) s += std::exp(one[j * 4 + k] - mx);
      for (int k = 0; k < 4; ++k) want[j * 4 + k] = std::exp(one[j * 4 + k] - mx) / s + 1e-6f;
    }
    for (int k = 0; k < 4; ++k) {
      float s = 0;
      for (int j = 0; j < 4; ++j) s += want[j * 4 + k];
      for (int j = 0; j < 4; ++j) want[j * 4 + k] /= s + 1e-6f;
    }
    Sinkhorn(one, 4, 1, 1e-6f);
    for (int i = 0; i < 16; ++i) EXPECT_FLOAT_EQ(one[i], want[i]);
  }
}

// Direct pooling of one entry (spec §7.3/§7.4) from per-token (v, z) rows, for comparison.
std::vector<float> PoolDirect(int64_t m, int64_t c, int64_t i, const std::vector<std::vector<float>>& v,
                              const std::vector<std::vector<float>>& z) {
  std::vector<float> out(static_cast<size_t>(c));
  const bool overlap = m == 4;
  for (int64_t f = 0; f < c; ++f) {
    std::vector<std::pair<float, float>> cand;  // (logit, value)
    if (overlap) {
      for (int64_t p = 4 * i - 4; p < 4 * i; ++p) {
        if (p >= 0) cand.push_back({z[p][f], v[p][f]});
      }
    }
    for (int64_t p = m * i; p < m * i + m; ++p) {
      const int64_t col = overlap ? c + f : f;
      cand.push_back({z[p][col], v[p][col]});
    }
    double mx = -INFINITY, den = 0, num = 0;
    for (auto [l, x] : cand) mx = std::max<double>(mx, l);
    for (auto [l, x] : cand) den += std::exp(l - mx), num += std::exp(l - mx) * x;
    out[f] = static_cast<float>(num / den);
  }
  return out;
}

TEST(V4Compressor, EmissionTimesAndPoolingMatchTheFormula) {
  Rng rng(8);
  for (int64_t m : {4, 128}) {
    const int64_t c = 8, kappa = m == 4 ? 2 : 1;
    kv::CompressorState s;
    std::vector<float> storage(static_cast<size_t>(kv::CompressorState::FloatsFor(m, c)));
    s.Bind(m, c, storage.data());
    s.Reset();
    std::vector<std::vector<float>> v, z;
    std::vector<float> pooled(c);
    int64_t emitted = 0;
    for (int64_t p = 0; p < 3 * m + 3; ++p) {
      v.emplace_back(kappa * c);
      z.emplace_back(kappa * c);
      for (auto& x : v.back()) x = static_cast<float>(rng.Normal());
      for (auto& x : z.back()) x = static_cast<float>(rng.Normal() * 2);
      const bool emit = CompressorStep(s, v.back().data(), z.back().data(), p, pooled.data());
      EXPECT_EQ(emit, (p + 1) % m == 0) << "m " << m << " pos " << p;
      if (!emit) continue;
      const std::vector<float> want = PoolDirect(m, c, p / m, v, z);
      for (int64_t f = 0; f < c; ++f) EXPECT_NEAR(pooled[f], want[f], 1e-5f) << p;
      EXPECT_EQ(p / m, emitted++);
    }
    EXPECT_EQ(emitted, 3);
  }
}

TEST(V4Moe, HashAndBiasedRouting) {
  checkpoint::ModelConfig c = checkpoint::TinyV4Config();
  LayerWeights w;
  std::vector<int32_t> table(c.vocab_size * c.num_experts_per_tok);
  for (int64_t t = 0; t < c.vocab_size; ++t) table[t * 2] = 5, table[t * 2 + 1] = static_cast<int32_t>(t % 5);
  w.tid2eid = table.data();
  std::vector<float> logits = {0, 1, 2, 3, 4, 5, 6, 7};
  Route r = RouteToken(c, w, logits.data(), 13);
  EXPECT_EQ(r.experts, (std::vector<int32_t>{5, 3}));
  EXPECT_NEAR(r.weights[0] + r.weights[1], c.routed_scaling_factor, 1e-5);
  auto sps = [](float x) { return std::sqrt(std::log1p(std::exp(x))); };
  EXPECT_NEAR(r.weights[0] / r.weights[1], sps(5) / sps(3), 1e-5);
  // Non-hash: the bias changes which experts win, not their weights.
  w.tid2eid = nullptr;
  std::vector<float> bias = {100, 0, 0, 0, 0, 0, 0, 0};
  w.gate_bias = bias.data();
  r = RouteToken(c, w, logits.data(), 13);
  EXPECT_EQ(r.experts, (std::vector<int32_t>{0, 7}));
  EXPECT_NEAR(r.weights[0] / r.weights[1], sps(0) / sps(7), 1e-5);
}

TEST(V4Ops, HadamardIsOrthonormalSylvester) {
  std::vector<BF16> x(128, F32ToBf16(0.0f));
  x[0] = F32ToBf16(1.0f);
  models::Hadamard(x.data(), 128);  // first column of H / sqrt(128): all equal
  for (auto v : x) EXPECT_EQ(Bf16ToF32(v), RoundBf16(1.0f / std::sqrt(128.0f)));
  std::fill(x.begin(), x.end(), F32ToBf16(0.0f));
  x[3] = F32ToBf16(1.0f);
  models::Hadamard(x.data(), 128);  // column 3: (-1)^popcount(i & 3)
  for (int i = 0; i < 128; ++i) {
    const float sign = (__builtin_popcount(i & 3) % 2) ? -1.0f : 1.0f;
    EXPECT_EQ(Bf16ToF32(x[i]), RoundBf16(sign / std::sqrt(128.0f))) << i;
  }
}

}  // namespace
}  // namespace dsv4::v4
