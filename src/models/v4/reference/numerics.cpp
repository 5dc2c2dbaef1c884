#include "models/v4/reference/numerics.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <numbers>

#include "core/bf16.h"
#include "core/check.h"
#include "core/quant.h"

namespace dsv4::v4::reference {
namespace {

std::vector<BF16> ToBf16(std::span<const float> x) {
  std::vector<BF16> b(x.size());
  for (size_t i = 0; i < x.size(); ++i) b[i] = F32ToBf16(x[i]);
  return b;
}

void FromBf16(std::span<const BF16> b, std::span<float> x) {
  for (size_t i = 0; i < x.size(); ++i) x[i] = Bf16ToF32(b[i]);
}

}  // namespace

float DotLanes8(const float* a, const float* b, size_t n) {
  float lane[8] = {};
  for (size_t k = 0; k < n; ++k) lane[k % 8] += a[k] * b[k];
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

void RoundToBf16(std::span<float> x) {
  for (float& v : x) v = RoundBf16(v);
}

std::vector<float> RmsNorm(std::span<const float> x, std::span<const float> weight, float eps) {
  DSV4_CHECK(x.size() == weight.size() && !x.empty());
  float sum_sq = 0.0f;
  for (float v : x) sum_sq += v * v;
  const float mean = sum_sq / static_cast<float>(x.size());
  const float r = 1.0f / std::sqrt(mean + eps);
  std::vector<float> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = RoundBf16(weight[i] * (x[i] * r));
  return y;
}

void HeadRmsNormBf16(std::span<float> x, float eps) {
  DSV4_CHECK(!x.empty());
  float sum_sq = 0.0f;
  for (float v : x) sum_sq += RoundBf16(v * v);
  const float mean = RoundBf16(sum_sq / static_cast<float>(x.size()));
  const float r = RoundBf16(1.0f / std::sqrt(RoundBf16(mean + eps)));
  for (float& v : x) v = RoundBf16(v * r);
}

void HadamardBf16(std::span<float> x) {
  const size_t n = x.size();
  DSV4_CHECK(n > 0 && std::has_single_bit(n));
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(n)));
  // Fast Walsh–Hadamard transform: for h = 1, 2, 4, ..., n/2 in turn, every pair (i, i + h)
  // with i & h == 0 becomes (x_i + x_{i+h}, x_i − x_{i+h}); after the last stride x = x·Hᵀ.
  for (size_t h = 1; h < n; h *= 2) {
    for (size_t i = 0; i < n; ++i) {
      if ((i & h) != 0) continue;
      const float a = x[i], b = x[i + h];
      x[i] = a + b;
      x[i + h] = a - b;
    }
  }
  for (float& v : x) v = RoundBf16(v * scale);
}

void Fp8SimulateBf16(std::span<float> x, size_t block) {
  std::vector<BF16> b = ToBf16(x);
  Fp8SimulateInplace(b, block);
  FromBf16(b, x);
}

void Fp4SimulateBf16(std::span<float> x) {
  std::vector<BF16> b = ToBf16(x);
  Fp4SimulateInplace(b);
  FromBf16(b, x);
}

float Sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

YarnRange YarnCorrectionRange(int64_t rope_dim, double theta, int64_t original_len,
                              double beta_fast, double beta_slow) {
  const double dim = static_cast<double>(rope_dim);
  auto corr = [&](double rotations) {
    return dim * std::log(static_cast<double>(original_len) / (rotations * 2 * std::numbers::pi)) /
           (2 * std::log(theta));
  };
  YarnRange r;
  r.lo = std::max(std::floor(corr(beta_fast)), 0.0);
  r.hi = std::min(std::ceil(corr(beta_slow)), dim - 1);
  if (r.lo == r.hi) r.hi += 0.001;
  return r;
}

std::vector<float> RopeInvFreq(int64_t rope_dim, double theta, double factor, int64_t original_len,
                               double beta_fast, double beta_slow) {
  DSV4_CHECK(rope_dim > 0 && rope_dim % 2 == 0);
  const int64_t half = rope_dim / 2;
  const float base = static_cast<float>(theta);
  std::vector<float> inv(static_cast<size_t>(half));
  for (int64_t k = 0; k < half; ++k) {
    const float exponent = static_cast<float>(2 * k) / static_cast<float>(rope_dim);
    inv[k] = 1.0f / std::pow(base, exponent);
  }
  if (original_len <= 0) return inv;
  const YarnRange r = YarnCorrectionRange(rope_dim, theta, original_len, beta_fast, beta_slow);
  const float lo = static_cast<float>(r.lo);
  const float span = static_cast<float>(r.hi - r.lo);
  const float f = static_cast<float>(factor);
  for (int64_t k = 0; k < half; ++k) {
    const float ramp = std::clamp((static_cast<float>(k) - lo) / span, 0.0f, 1.0f);
    const float smooth = 1.0f - ramp;
    inv[k] = inv[k] / f * (1.0f - smooth) + inv[k] * smooth;
  }
  return inv;
}

std::vector<float> LayerRopeInvFreq(const checkpoint::ModelConfig& c, int64_t layer) {
  if (c.ratio(layer) == 0) {
    return RopeInvFreq(c.qk_rope_head_dim, c.rope_theta, 1.0, 0, 0, 0);
  }
  const int64_t original = c.yarn.enabled ? c.yarn.original_max_position_embeddings : 0;
  return RopeInvFreq(c.qk_rope_head_dim, c.compress_rope_theta, c.yarn.factor, original,
                     c.yarn.beta_fast, c.yarn.beta_slow);
}

float RopeAngle(int64_t pos, float inv_freq) { return static_cast<float>(pos) * inv_freq; }

void ApplyRope(std::span<float> x, std::span<const float> inv_freq, int64_t pos, bool inverse) {
  DSV4_CHECK(x.size() == 2 * inv_freq.size());
  for (size_t k = 0; k < inv_freq.size(); ++k) {
    const float phi = RopeAngle(pos, inv_freq[k]);
    const float cos_phi = std::cos(phi);
    const float sin_phi = inverse ? -std::sin(phi) : std::sin(phi);
    const float a = x[2 * k], b = x[2 * k + 1];
    x[2 * k] = RoundBf16(a * cos_phi - b * sin_phi);
    x[2 * k + 1] = RoundBf16(a * sin_phi + b * cos_phi);
  }
}

}  // namespace dsv4::v4::reference
