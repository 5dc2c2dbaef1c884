// V3.2 building blocks against hand-computed values (spec §14): the YaRN table and mscale²,
// group-limited routing, the indexer's non-interleaved RoPE and FP8 scores, the lossless
// 656-B / 132-B cache records, the fused residual norm and the key LayerNorm.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "checkpoint/presets.h"
#include "core/fp8.h"
#include "core/kv_entry.h"
#include "core/quant.h"
#include "core/rng.h"
#include "kernels/cpu/indexer_fp8.h"
#include "kv/layout.h"
#include "models/common/hadamard.h"
#include "models/common/norm.h"
#include "models/common/rope.h"
#include "models/v32/attention.h"
#include "models/v32/indexer.h"
#include "models/v32/moe.h"
#include "models/v32/ops.h"

namespace dsv4::v32 {
namespace {

checkpoint::ModelConfig RealV32() { return checkpoint::PresetConfig("v3.2").value(); }

std::vector<BF16> RandomBf16(int64_t n, Rng& rng, double scale = 1.0) {
  std::vector<BF16> x(static_cast<size_t>(n));
  for (BF16& v : x) v = F32ToBf16(static_cast<float>(scale * rng.Normal()));
  return x;
}

TEST(V32Rope, YarnTableForThetaTenThousandFactorForty) {
  // corr(32) = 64·ln(4096/(32·2π))/(2·ln 10⁴) = 10.47 -> lo 10; corr(1) = 22.5 -> hi 23.
  const checkpoint::ModelConfig c = RealV32();
  double lo = 0, hi = 0;
  models::YarnRange(64, c.rope_theta, c.yarn, &lo, &hi);
  EXPECT_EQ(lo, 10.0);
  EXPECT_EQ(hi, 23.0);
  const std::vector<float> inv = MakeMlaConstants(c).inv_freq;
  ASSERT_EQ(inv.size(), 32u);
  for (int k = 0; k < 32; ++k) {
    const double plain = std::pow(10000.0, -k / 32.0);
    const double ramp = std::clamp((k - 10.0) / 13.0, 0.0, 1.0);
    const double want = plain / 40.0 * ramp + plain * (1.0 - ramp);
    EXPECT_NEAR(inv[k], want, want * 1e-6) << k;
  }
  EXPECT_FLOAT_EQ(inv[0], 1.0f);                                   // fastest pair untouched
  EXPECT_NEAR(inv[31] * 40.0, std::pow(1e4, -31.0 / 32.0), 1e-9);  // slowest pair ÷ 40
}

TEST(V32Rope, SoftmaxScaleCarriesYarnMscaleSquared) {
  checkpoint::ModelConfig c = RealV32();
  const double m = 0.1 * std::log(40.0) + 1.0;  // 1.368888
  EXPECT_NEAR(models::YarnMscale(c.yarn), m, 1e-12);
  EXPECT_NEAR(MakeMlaConstants(c).softmax_scale, m * m / std::sqrt(192.0), 1e-7);
  EXPECT_NEAR(MakeMlaConstants(c).softmax_scale, 0.13524, 1e-5);  // spec §14.2 step 4
  // The tiny model: (64 + 64)^-0.5 · mscale².
  EXPECT_NEAR(MakeMlaConstants(checkpoint::TinyV32Config()).softmax_scale, m * m / std::sqrt(128.0),
              1e-7);
  // No rope_scaling, or mscale_all_dim 0 (HF semantics): no correction.
  checkpoint::ModelConfig plain = c;
  plain.yarn.enabled = false;
  EXPECT_FLOAT_EQ(MakeMlaConstants(plain).softmax_scale, static_cast<float>(1 / std::sqrt(192.0)));
  plain = c;
  plain.yarn.mscale_all_dim = 0.0;
  EXPECT_EQ(models::YarnMscale(plain.yarn), 1.0);
  // Without YaRN the table is the plain θ^(-2k/64).
  checkpoint::ModelConfig no_yarn = c;
  no_yarn.yarn.enabled = false;
  EXPECT_NEAR(MakeMlaConstants(no_yarn).inv_freq[31], std::pow(1e4, -31.0 / 32.0), 1e-9);
}

TEST(V32Indexer, RopeIsNonInterleavedOnTheFirstDims) {
  // A unit vector in dim j < 32 rotates into dim j + 32 (not j + 1); dims >= 64 stay put.
  const std::vector<float> inv = MakeMlaConstants(checkpoint::TinyV32Config()).inv_freq;
  const int64_t pos = 1000;
  for (int j : {0, 5, 31}) {
    std::vector<BF16> x(128, F32ToBf16(0.0f));
    x[j] = F32ToBf16(1.0f);
    x[100] = F32ToBf16(3.0f);
    models::ApplyRopeHalfSplit(inv, x.data(), pos);
    const float angle = static_cast<float>(pos) * inv[j];
    for (int d = 0; d < 128; ++d) {
      float want = 0.0f;
      if (d == j) want = RoundBf16(std::cos(angle));
      if (d == j + 32) want = RoundBf16(std::sin(angle));
      if (d == 100) want = 3.0f;
      EXPECT_EQ(Bf16ToF32(x[d]), want) << "j " << j << " d " << d;
    }
  }
  // RotateIndexerVector = that rotation, then the Hadamard over all 128 dims: undoing the
  // Hadamard (it is its own inverse) gives back the rotated vector.
  Rng rng(5);
  std::vector<BF16> x = RandomBf16(128, rng), rotated = x;
  models::ApplyRopeHalfSplit(inv, rotated.data(), 77);
  RotateIndexerVector(inv, 77, x.data(), 128);
  models::Hadamard(x.data(), 128);
  for (int d = 0; d < 128; ++d) {
    EXPECT_NEAR(Bf16ToF32(x[d]), Bf16ToF32(rotated[d]),
                0.02 * std::abs(Bf16ToF32(rotated[d])) + 1e-2)
        << d;
  }
}

TEST(V32Indexer, ScoresFollowTheFp8Formula) {
  kernels::Workspace ws;
  // I_s = k_scale_s · Σ_h ReLU(q_h · k_s) · w_h, from codes and scales, in double here; the
  // model's scan (kernels::IndexerScoresFp8) reads the cache's packed 132-B keys.
  Rng rng(8);
  const int64_t heads = 4, dim = 128, n = 300;
  std::vector<float> q(heads * dim), hw(heads), k(n * dim), ks(n), got(n);
  std::vector<uint8_t> q_codes(heads * dim), codes(dim), recs(n * (dim + 4));
  for (int64_t h = 0; h < heads; ++h) {
    const std::vector<BF16> x = RandomBf16(dim, rng);
    const float qs = QuantizeIndexerQuery(x.data(), dim, q_codes.data() + h * dim);
    hw[h] = IndexerHeadWeight(static_cast<float>(rng.Normal()), qs, heads, dim);
    // The codes times the scale are exactly act_quant's dequantised values.
    float s = 0.0f;
    ActQuantFp8(x, dim, codes, {&s, 1});
    EXPECT_EQ(s, qs);
    for (int64_t d = 0; d < dim; ++d) {
      EXPECT_EQ(q_codes[h * dim + d], codes[d]);
      q[h * dim + d] = E4M3ToF32(codes[d]);
    }
  }
  for (int64_t i = 0; i < n; ++i) {
    const std::vector<BF16> x = RandomBf16(dim, rng, std::exp(rng.Uniform(-2, 2)));
    uint8_t* rec = recs.data() + i * (dim + 4);
    EncodeIndexerKeyFp8(x.data(), dim, rec);
    ks[i] = DecodeIndexerKeyFp8(rec, dim, k.data() + i * dim);
  }
  ThreadPool pool(2);
  const uint8_t* page = recs.data();
  kernels::IndexerScoresFp8(pool, {q_codes.data(), hw.data(), heads, dim}, {&page, n, dim + 4}, n,
                            got.data(), &ws);
  int64_t zeros = 0;
  for (int64_t i = 0; i < n; ++i) {
    double want = 0.0, mag = 0.0;
    for (int64_t h = 0; h < heads; ++h) {
      double dot = 0.0;
      for (int64_t d = 0; d < dim; ++d) dot += static_cast<double>(q[h * dim + d]) * k[i * dim + d];
      want += std::max(dot, 0.0) * hw[h];
      mag += std::abs(dot * hw[h]);
    }
    want *= ks[i];
    EXPECT_NEAR(got[i], want, 1e-5 * mag * ks[i] + 1e-30) << i;
    zeros += got[i] == 0.0f;
  }
  EXPECT_LT(zeros, n);
  // The head weight: ((w · heads^-0.5) · q_scale) · dim^-0.5.
  EXPECT_FLOAT_EQ(IndexerHeadWeight(2.0f, 0.25f, 64, 128),
                  2.0f * 0.125f * 0.25f / std::sqrt(128.0f));
}

TEST(V32Cache, MlaRecordIsTheFp8SimulatedLatentPlusBf16Rope) {
  const checkpoint::ModelConfig c = RealV32();
  ASSERT_EQ(kv::MlaRecordBytes(c, kv::MlaFormat::kFp8), 656);
  ASSERT_EQ(kv::IndexerKeyBytes(128, kv::IndexerFormat::kFp8), 132);
  Rng rng(3);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<BF16> latent = RandomBf16(512, rng, std::exp(rng.Uniform(-8, 8)));
    if (trial == 0) std::fill(latent.begin(), latent.begin() + 128, F32ToBf16(0.0f));
    const std::vector<BF16> rope = RandomBf16(64, rng);
    std::vector<uint8_t> rec(656);
    EncodeMlaRecord(latent.data(), 512, rope.data(), 64, rec.data());
    std::vector<float> out(576);
    DecodeMlaRecord(rec.data(), 512, 64, out.data());
    // Lossless: exactly what the corrected reference caches (act_quant per 128, pow2 scales,
    // dequantised to BF16) and the RoPE key unchanged.
    std::vector<BF16> sim = latent;
    Fp8SimulateInplace(sim, 128);
    for (int d = 0; d < 512; ++d) ASSERT_EQ(out[d], Bf16ToF32(sim[d])) << trial << " " << d;
    for (int d = 0; d < 64; ++d) ASSERT_EQ(out[512 + d], Bf16ToF32(rope[d]));
    // Re-encoding the decoded record reproduces the same bytes (a fixed point).
    std::vector<BF16> again(512);
    for (int d = 0; d < 512; ++d) again[d] = F32ToBf16(out[d]);
    std::vector<uint8_t> rec2(656);
    EncodeMlaRecord(again.data(), 512, rope.data(), 64, rec2.data());
    std::vector<float> out2(576);
    DecodeMlaRecord(rec2.data(), 512, 64, out2.data());
    ASSERT_EQ(out, out2);
  }
}

TEST(V32Routing, GroupLimitedSelectionOnAHandExample) {
  // 8 experts in 2 groups of 4, keep 1 group, 2 experts (TinyV32Config). Biased scores:
  //   group 0: 0.95 0.10 0.10 0.10 -> top-2 sum 1.05 (holds the single best expert)
  //   group 1: 0.62 0.60 0.50 0.10 -> top-2 sum 1.22 -> kept
  // so experts 4 and 5 win although expert 0 has the highest biased score. Weights use the
  // unbiased sigmoid scores: s4 = σ(1), s5 = σ(−1), renormalised, × 2.5.
  const checkpoint::ModelConfig c = checkpoint::TinyV32Config();
  ASSERT_EQ(c.n_group, 2);
  ASSERT_EQ(c.topk_group, 1);
  ASSERT_EQ(c.num_experts_per_tok, 2);
  const float logits[8] = {0, 0, 0, 0, 1, -1, 0, 0};
  const float biased[8] = {0.95f, 0.10f, 0.10f, 0.10f, 0.62f, 0.60f, 0.50f, 0.10f};
  float bias[8];
  for (int e = 0; e < 8; ++e) bias[e] = biased[e] - 1.0f / (1.0f + std::exp(-logits[e]));
  const Route r = RouteToken(c, logits, bias);
  ASSERT_EQ(r.experts, (std::vector<int32_t>{4, 5}));
  const double s4 = 1 / (1 + std::exp(-1.0)), s5 = 1 / (1 + std::exp(1.0));
  EXPECT_NEAR(r.weights[0], 2.5 * s4 / (s4 + s5), 1e-6);
  EXPECT_NEAR(r.weights[1], 2.5 * s5 / (s4 + s5), 1e-6);

  // Two groups kept of four (16 experts, top-4): the best group by its top-2 sum and the
  // second best, even when a third group holds a larger single score.
  checkpoint::ModelConfig c4 = c;
  c4.n_routed_experts = 16;
  c4.n_group = 4;
  c4.topk_group = 2;
  c4.num_experts_per_tok = 4;
  std::vector<float> zeros(16, 0.0f), b4(16, -0.45f);  // σ(0) = 0.5: biased 0.05 by default
  b4[0] = 0.4f;                                        // group 0: 0.9 + 0.05 = 0.95
  b4[4] = 0.2f, b4[5] = 0.2f;                          // group 1: 0.7 + 0.7 = 1.40
  b4[8] = 0.1f, b4[9] = 0.1f;                          // group 2: 0.6 + 0.6 = 1.20
  b4[10] = 0.05f;                                      //          (third best in group 2: 0.55)
  const Route r4 = RouteToken(c4, zeros.data(), b4.data());
  ASSERT_EQ(r4.experts, (std::vector<int32_t>{4, 5, 8, 9}));  // ties go to the lower index
  for (float w : r4.weights) EXPECT_NEAR(w, 2.5 / 4, 1e-6);   // equal unbiased scores
}

TEST(V32Ops, FusedResidualNormUsesTheUnroundedSum) {
  Rng rng(4);
  const int64_t D = 256;
  const std::vector<BF16> r0 = RandomBf16(D, rng, 30.0), f = RandomBf16(D, rng, 0.3);
  std::vector<float> w(D);
  for (float& v : w) v = static_cast<float>(1 + 0.1 * rng.Normal());
  std::vector<BF16> r = r0, y(D), y_rounded(D);
  AddRmsNorm(f.data(), r.data(), w.data(), D, 1e-6f, y.data());
  double sq = 0;
  std::vector<float> s(D);
  for (int64_t i = 0; i < D; ++i) {
    s[i] = Bf16ToF32(f[i]) + Bf16ToF32(r0[i]);
    sq += static_cast<double>(s[i]) * s[i];
    EXPECT_EQ(r[i].bits, F32ToBf16(s[i]).bits);  // the residual keeps bf16(f + r)
  }
  const double inv = 1 / std::sqrt(sq / D + 1e-6);
  int64_t differs = 0;
  models::RmsNorm(r.data(), w.data(), D, 1e-6f, y_rounded.data());
  for (int64_t i = 0; i < D; ++i) {
    const double want = s[i] * inv * w[i];
    EXPECT_NEAR(Bf16ToF32(y[i]), want, std::abs(want) * 4e-3 + 1e-6) << i;
    differs += y[i].bits != y_rounded[i].bits;
  }
  EXPECT_GT(differs, 0);  // normalising the rounded residual instead would differ
}

TEST(V32Ops, LayerNormHasWeightAndBias) {
  Rng rng(6);
  const int64_t n = 128;
  const std::vector<BF16> x = RandomBf16(n, rng, 3.0);
  std::vector<float> w(n), b(n);
  for (int64_t i = 0; i < n; ++i)
    w[i] = static_cast<float>(rng.Normal()), b[i] = static_cast<float>(rng.Normal());
  std::vector<BF16> y(n);
  LayerNorm(x.data(), w.data(), b.data(), n, kIndexerNormEps, y.data());
  double mean = 0, var = 0;
  for (const BF16& v : x) mean += Bf16ToF32(v) / n;
  for (const BF16& v : x) var += (Bf16ToF32(v) - mean) * (Bf16ToF32(v) - mean) / n;
  for (int64_t i = 0; i < n; ++i) {
    const double want = (Bf16ToF32(x[i]) - mean) / std::sqrt(var + 1e-6) * w[i] + b[i];
    EXPECT_NEAR(Bf16ToF32(y[i]), want, std::abs(want) * 4e-3 + 1e-5) << i;
  }
}

}  // namespace
}  // namespace dsv4::v32
