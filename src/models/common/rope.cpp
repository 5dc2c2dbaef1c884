#include "models/common/rope.h"

#include <algorithm>
#include <cmath>

namespace dsv4::models {
namespace {

// cos and sin of the FP32 angle fp32(pos)·inv, in FP32 (the reference's complex64 table).
void CosSin(float inv, int64_t pos, float* c, float* s) {
  const float angle = static_cast<float>(pos) * inv;  // rounded to FP32, as the reference's table
  *c = std::cos(angle);
  *s = std::sin(angle);
}

}  // namespace

void YarnRange(int64_t rope_dim, double theta, const checkpoint::YarnConfig& yarn, double* lo, double* hi) {
  const double two_pi = 2.0 * M_PI;
  auto corr = [&](double beta) {
    return static_cast<double>(rope_dim) *
           std::log(static_cast<double>(yarn.original_max_position_embeddings) / (beta * two_pi)) /
           (2.0 * std::log(theta));
  };
  *lo = std::max(std::floor(corr(yarn.beta_fast)), 0.0);
  *hi = std::min(std::ceil(corr(yarn.beta_slow)), static_cast<double>(rope_dim - 1));
  if (*lo == *hi) *hi += 0.001;
}

std::vector<float> RopeInvFreq(int64_t rope_dim, double theta, const checkpoint::YarnConfig& yarn) {
  const int64_t pairs = rope_dim / 2;
  std::vector<float> inv_freq(static_cast<size_t>(pairs));
  double lo = 0, hi = 0;
  if (yarn.enabled) YarnRange(rope_dim, theta, yarn, &lo, &hi);
  for (int64_t k = 0; k < pairs; ++k) {
    // FP32 as in the reference: theta ** (2k / dim) on float32 tensors.
    const float exponent = static_cast<float>(2 * k) / static_cast<float>(rope_dim);
    const float inv = 1.0f / std::pow(static_cast<float>(theta), exponent);
    if (!yarn.enabled) {
      inv_freq[k] = inv;
      continue;
    }
    const float ramp =
        static_cast<float>(std::clamp((static_cast<double>(k) - lo) / (hi - lo), 0.0, 1.0));
    const float smooth = 1.0f - ramp;
    inv_freq[k] = inv / static_cast<float>(yarn.factor) * (1.0f - smooth) + inv * smooth;
  }
  return inv_freq;
}

double YarnMscale(const checkpoint::YarnConfig& yarn) {
  if (!yarn.enabled || yarn.factor <= 1.0 || yarn.mscale_all_dim == 0.0) return 1.0;
  return 0.1 * yarn.mscale_all_dim * std::log(yarn.factor) + 1.0;
}

void ApplyRopeInterleaved(std::span<const float> inv, BF16* x, int64_t pos, bool inverse) {
  for (size_t k = 0; k < inv.size(); ++k) {
    float c, s;
    CosSin(inv[k], pos, &c, &s);
    ApplyRopeInterleavedCs(&c, &s, 1, x + 2 * k, inverse);
  }
}

void RopeCosSin(std::span<const float> inv, int64_t pos, float* c, float* s) {
  for (size_t k = 0; k < inv.size(); ++k) CosSin(inv[k], pos, &c[k], &s[k]);
}

void ApplyRopeInterleavedCs(const float* c, const float* s, size_t pairs, BF16* x, bool inverse) {
  for (size_t k = 0; k < pairs; ++k) {
    const float sk = inverse ? -s[k] : s[k];
    const float re = Bf16ToF32(x[2 * k]), im = Bf16ToF32(x[2 * k + 1]);
    x[2 * k] = F32ToBf16(re * c[k] - im * sk);
    x[2 * k + 1] = F32ToBf16(re * sk + im * c[k]);
  }
}

void ApplyRopeHalfSplit(std::span<const float> inv, BF16* x, int64_t pos) {
  const size_t half = inv.size();
  for (size_t k = 0; k < half; ++k) {
    float c, s;
    CosSin(inv[k], pos, &c, &s);
    const float re = Bf16ToF32(x[k]), im = Bf16ToF32(x[k + half]);
    x[k] = F32ToBf16(re * c - im * s);
    x[k + half] = F32ToBf16(re * s + im * c);
  }
}

}  // namespace dsv4::models
