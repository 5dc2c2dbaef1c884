// Linear layers of the reference forward (spec §4.4–4.6, §6.5, §12.2): block-scaled FP8 and
// FP4 products against the formulas evaluated in double, and the checkpoint loaders.
#include "models/v4/reference/weights.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/bf16.h"
#include "core/fp4.h"
#include "core/fp8.h"
#include "core/quant.h"
#include "core/rng.h"
#include "checkpoint/presets.h"
#include "checkpoint/tensor_store.h"
#include "testing/weight_generator.h"

namespace dsv4::v4::reference {
namespace {

std::vector<float> RandomBf16(Rng& rng, int64_t n, double std) {
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = RoundBf16(static_cast<float>(std * rng.Normal()));
  return v;
}

// The activation quantisation of §4.4 (GEMM path), dequantised: qx_k · sx_{k/128}.
std::vector<double> DequantisedInput(const std::vector<float>& x) {
  std::vector<BF16> xb(x.size());
  for (size_t i = 0; i < x.size(); ++i) xb[i] = F32ToBf16(x[i]);
  std::vector<uint8_t> codes(x.size());
  std::vector<float> scales(x.size() / 128);
  ActQuantFp8(xb, 128, codes, scales);
  std::vector<double> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = E4M3ToF32(codes[i]) * scales[i / 128];
  return out;
}

TEST(ReferenceLinearTest, Fp8MatchesTheBlockScaledFormula) {
  constexpr int64_t kOut = 200, kIn = 384;  // a partial row tile, three K blocks
  Rng rng(21);
  std::vector<float> w(kOut * kIn);
  for (int64_t n = 0; n < kOut; ++n) {
    for (int64_t k = 0; k < kIn; ++k) {  // tiles of very different magnitude
      w[n * kIn + k] = static_cast<float>(rng.Normal() * std::ldexp(1.0, (n / 128 + k / 128) % 3));
    }
  }
  std::vector<uint8_t> codes(w.size()), scales(2 * 3);
  QuantizeFp8Block128(w, kOut, kIn, codes, scales);
  Linear l{LinearMode::kFp8, kOut, kIn, std::vector<float>(codes.size()), {}};
  for (size_t i = 0; i < codes.size(); ++i) l.w[i] = E4M3ToF32(codes[i]);
  for (uint8_t s : scales) l.scale.push_back(E8M0ToF32(s));
  std::vector<float> deq(w.size());
  DequantizeFp8Block128(codes, scales, kOut, kIn, deq);

  std::vector<float> x = RandomBf16(rng, kIn, 1.0);
  for (int64_t k = 128; k < 256; ++k) x[k] = RoundBf16(x[k] * 64.0f);  // per-block act scales
  const std::vector<double> xq = DequantisedInput(x);
  const std::vector<float> y = Apply(l, x);
  const Linear plain{LinearMode::kBf16, kOut, kIn, deq, {}};
  const std::vector<float> y_plain = Apply(plain, x);  // same weights, no act quantisation
  int64_t differs_from_plain = 0;
  for (int64_t n = 0; n < kOut; ++n) {
    double expected = 0, magnitude = 0;
    for (int64_t k = 0; k < kIn; ++k) {
      expected += xq[k] * deq[n * kIn + k];
      magnitude += std::fabs(xq[k] * deq[n * kIn + k]);
    }
    EXPECT_EQ(y[n], RoundBf16(y[n]));
    // BF16 output rounding plus FP32 accumulation error.
    EXPECT_NEAR(y[n], expected, std::fabs(expected) * 0x1p-8 + magnitude * 1e-6) << "row " << n;
    differs_from_plain += y[n] != y_plain[n];
  }
  EXPECT_GT(differs_from_plain, kOut / 2);  // the input really was quantised
}

TEST(ReferenceLinearTest, Fp4MatchesTheRowChunkFormula) {
  constexpr int64_t kOut = 64, kIn = 256;
  Rng rng(22);
  std::vector<float> w(kOut * kIn);
  for (size_t i = 0; i < w.size(); ++i) {
    w[i] = static_cast<float>(rng.Normal() * std::ldexp(1.0, static_cast<int>(i / 32 % 5) - 2));
  }
  std::vector<uint8_t> packed(kOut * kIn / 2), scales(kOut * kIn / 32);
  QuantizeFp4Row32(w, kOut, kIn, packed, scales);
  Linear l{LinearMode::kFp4, kOut, kIn, std::vector<float>(w.size()), {}};
  for (size_t i = 0; i < packed.size(); ++i) {  // even element in the low nibble
    l.w[2 * i] = E2M1ToF32(E2M1Low(packed[i]));
    l.w[2 * i + 1] = E2M1ToF32(E2M1High(packed[i]));
  }
  for (uint8_t s : scales) l.scale.push_back(E8M0ToF32(s));
  std::vector<float> deq(w.size());
  DequantizeFp4Row32(packed, scales, kOut, kIn, deq);

  const std::vector<float> x = RandomBf16(rng, kIn, 2.0);
  const std::vector<double> xq = DequantisedInput(x);
  const std::vector<float> y = Apply(l, x);
  for (int64_t n = 0; n < kOut; ++n) {
    double expected = 0, magnitude = 0;
    for (int64_t k = 0; k < kIn; ++k) {
      expected += xq[k] * deq[n * kIn + k];
      magnitude += std::fabs(xq[k] * deq[n * kIn + k]);
    }
    EXPECT_NEAR(y[n], expected, std::fabs(expected) * 0x1p-8 + magnitude * 1e-6) << "row " << n;
  }
}

TEST(ReferenceLinearTest, Bf16AndF32ModesRoundAsDocumented) {
  const Linear w{LinearMode::kBf16, 1, 2, {1.0f, 1.0f}, {}};
  const std::vector<float> x = {1.0f, 0x1p-9f};
  EXPECT_EQ(Apply(w, x)[0], 1.0f);  // 1 + 2^-9 rounds to BF16
  Linear f = w;
  f.mode = LinearMode::kF32;
  EXPECT_EQ(Apply(f, x)[0], 1.0f + 0x1p-9f);  // FP32 output is not rounded
}

TEST(ReferenceLinearTest, LoadersDecodeBothWeightFormatsToTheSameValues) {
  checkpoint::ModelConfig fp8 = checkpoint::TinyV4Config();
  checkpoint::ModelConfig bf16 = fp8;
  bf16.weight_format = checkpoint::WeightFormat::kBf16;
  auto make = [](const checkpoint::ModelConfig& c) {
    Result<std::vector<checkpoint::OwnedTensor>> t = fixtures::GenerateWeights(c, 99);
    EXPECT_TRUE(t.ok());
    return std::move(checkpoint::TensorStore::Create("t", std::move(t).value())).value();
  };
  const std::unique_ptr<checkpoint::TensorStore> w8 = make(fp8), w16 = make(bf16);
  const int64_t dim = fp8.hidden_size, heads = fp8.num_attention_heads, d = fp8.head_dim;

  // Dense FP8 linear: code · tile scale equals the BF16 checkpoint's value.
  Result<Linear> a = LoadDenseLinear(fp8, *w8, "layers.1.attn.wq_b", heads * d, fp8.q_lora_rank);
  Result<Linear> b = LoadDenseLinear(bf16, *w16, "layers.1.attn.wq_b", heads * d, fp8.q_lora_rank);
  ASSERT_TRUE(a.ok() && b.ok()) << a.status().ToString() << b.status().ToString();
  EXPECT_EQ(a->mode, LinearMode::kFp8);
  EXPECT_EQ(b->mode, LinearMode::kBf16);
  const int64_t kb = fp8.q_lora_rank / 128;
  for (int64_t n = 0; n < a->out; ++n) {
    for (int64_t k = 0; k < a->in; ++k) {
      ASSERT_EQ(a->w[n * a->in + k] * a->scale[(n / 128) * kb + k / 128], b->w[n * b->in + k]);
    }
  }
  // Routed expert FP4: code · per-32 scale.
  Result<Linear> e8 =
      LoadExpertLinear(fp8, *w8, "layers.2.ffn.experts.5.w2", dim, fp8.moe_intermediate_size);
  Result<Linear> e16 =
      LoadExpertLinear(bf16, *w16, "layers.2.ffn.experts.5.w2", dim, fp8.moe_intermediate_size);
  ASSERT_TRUE(e8.ok() && e16.ok());
  EXPECT_EQ(e8->mode, LinearMode::kFp4);
  for (int64_t i = 0; i < dim * fp8.moe_intermediate_size; ++i) {
    ASSERT_EQ(e8->w[i] * e8->scale[i / 32], e16->w[i]);
  }
  // wo_a: dequantised at load into a plain BF16 matmul in both formats (§6.5).
  const int64_t rows = fp8.o_groups * fp8.o_lora_rank, cols = heads * d / fp8.o_groups;
  Result<Linear> o8 = LoadWoA(fp8, *w8, "layers.0.attn.wo_a", rows, cols);
  Result<Linear> o16 = LoadWoA(bf16, *w16, "layers.0.attn.wo_a", rows, cols);
  ASSERT_TRUE(o8.ok() && o16.ok());
  EXPECT_EQ(o8->mode, LinearMode::kBf16);
  EXPECT_TRUE(o8->scale.empty());
  EXPECT_EQ(o8->w, o16->w);
}

TEST(ReferenceLinearTest, LoaderReportsWrongShapes) {
  const checkpoint::ModelConfig c = checkpoint::TinyV4Config();
  Result<std::vector<checkpoint::OwnedTensor>> t = fixtures::GenerateWeights(c, 1);
  ASSERT_TRUE(t.ok());
  const std::unique_ptr<checkpoint::TensorStore> w =
      std::move(checkpoint::TensorStore::Create("t", std::move(t).value())).value();
  Result<Linear> bad =
      LoadDenseLinear(c, *w, "layers.0.attn.wq_a", c.q_lora_rank + 1, c.hidden_size);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("layers.0.attn.wq_a.weight"), std::string::npos);
  Result<Linear> missing = LoadDenseLinear(c, *w, "layers.9.attn.wq_a", 1, 1);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace dsv4::v4::reference
