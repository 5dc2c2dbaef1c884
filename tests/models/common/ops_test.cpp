// The row operations both forward passes share (src/models/common/norm.h, hadamard.h): the
// shared versions reproduce, bit for bit, the two per-model copies they replaced (V4's fused
// first butterflies and double-precision scale; V3.2's plain loop, FP32 row copy and
// float-precision scale), so no logit moves.
#include <bit>
#include <cmath>
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

#include "core/bf16.h"
#include "core/rng.h"
#include "models/common/hadamard.h"
#include "models/common/norm.h"

namespace dsv4::models {
namespace {

// V3.2's former Hadamard: one butterfly loop per stride, scale 1.0f / sqrtf(float(n)).
void PlainHadamard(BF16* x, int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = Bf16ToF32(x[i]);
  for (int64_t len = 1; len < n; len <<= 1) {
    for (int64_t i = 0; i < n; i += 2 * len) {
      for (int64_t j = i; j < i + len; ++j) {
        const float a = v[j], b = v[j + len];
        v[j] = a + b;
        v[j + len] = a - b;
      }
    }
  }
  const float scale = 1.0f / std::sqrt(static_cast<float>(n));
  for (int64_t i = 0; i < n; ++i) x[i] = F32ToBf16(v[i] * scale);
}

// V3.2's former RMSNorm: the row copied to FP32 first.
void PlainRmsNorm(const BF16* x, const float* w, int64_t dim, float eps, BF16* y) {
  std::vector<float> v(static_cast<size_t>(dim));
  for (int64_t i = 0; i < dim; ++i) v[i] = Bf16ToF32(x[i]);
  float sq = 0.0f;
  for (int64_t i = 0; i < dim; ++i) sq += v[i] * v[i];
  const float r = 1.0f / std::sqrt(sq / static_cast<float>(dim) + eps);
  for (int64_t i = 0; i < dim; ++i) y[i] = F32ToBf16(v[i] * r * w[i]);
}

BF16 SpreadBf16(Rng& rng) {
  const int exponent = static_cast<int>(rng.Below(25)) - 12;
  return F32ToBf16(std::ldexp(static_cast<float>(rng.Normal()), exponent));
}

TEST(HadamardScale, BothSpellingsGiveTheSameFloatForEveryPowerOfTwo) {
  for (int k = 0; k <= 30; ++k) {
    const int64_t n = int64_t{1} << k;
    const float v32 = 1.0f / std::sqrt(static_cast<float>(n));
    EXPECT_EQ(std::bit_cast<uint32_t>(HadamardScale(n)), std::bit_cast<uint32_t>(v32))
        << "n 2^" << k;
  }
}

// Magnitudes spread over 2^±12 make the sums cancel, so a different per-element order of
// additions would show above the BF16 rounding; n up to 2^16 covers the heap path.
TEST(Hadamard, MatchesThePlainButterflyLoopBitForBit) {
  Rng rng(29);
  for (int k = 0; k <= 16; ++k) {
    const int64_t n = int64_t{1} << k;
    for (int trial = 0; trial < (k <= 10 ? 8 : 2); ++trial) {
      std::vector<BF16> x(static_cast<size_t>(n));
      for (BF16& v : x) v = SpreadBf16(rng);
      std::vector<BF16> want = x;
      Hadamard(x.data(), n);
      PlainHadamard(want.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(x[i].bits, want[i].bits) << "n " << n << " element " << i;
      }
    }
  }
}

TEST(RmsNorm, MatchesTheFp32CopyLoopAndTheFp32RowBitForBit) {
  Rng rng(31);
  for (int64_t dim : {1, 7, 128, 512, 4096}) {
    std::vector<BF16> x(static_cast<size_t>(dim));
    std::vector<float> xf(x.size()), w(x.size());
    for (int64_t i = 0; i < dim; ++i) {
      x[i] = SpreadBf16(rng);
      xf[i] = Bf16ToF32(x[i]);
      w[i] = static_cast<float>(rng.Uniform(0.5, 1.5));
    }
    std::vector<BF16> want(x.size()), from_f32(x.size()), in_place = x;
    PlainRmsNorm(x.data(), w.data(), dim, 1e-6f, want.data());
    RmsNormF32(xf.data(), w.data(), dim, 1e-6f, from_f32.data());
    RmsNorm(in_place.data(), w.data(), dim, 1e-6f, in_place.data());  // x and y alias
    for (int64_t i = 0; i < dim; ++i) {
      ASSERT_EQ(in_place[i].bits, want[i].bits) << "dim " << dim << " element " << i;
      ASSERT_EQ(from_f32[i].bits, want[i].bits) << "dim " << dim << " element " << i;
    }
  }
}

}  // namespace
}  // namespace dsv4::models
