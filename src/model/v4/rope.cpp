#include "model/v4/rope.h"

#include <algorithm>
#include <cmath>

namespace dsv4::v4 {

void YarnRange(int64_t rope_dim, double theta, const model::YarnConfig& yarn, double* lo,
               double* hi) {
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

RopeTable::RopeTable(int64_t rope_dim, double theta, const model::YarnConfig& yarn) {
  const int64_t pairs = rope_dim / 2;
  inv_freq_.resize(static_cast<size_t>(pairs));
  double lo = 0, hi = 0;
  if (yarn.enabled) YarnRange(rope_dim, theta, yarn, &lo, &hi);
  for (int64_t k = 0; k < pairs; ++k) {
    // FP32 as in the reference: theta ** (2k / dim) on float32 tensors.
    const float exponent = static_cast<float>(2 * k) / static_cast<float>(rope_dim);
    const float inv = 1.0f / std::pow(static_cast<float>(theta), exponent);
    if (!yarn.enabled) {
      inv_freq_[k] = inv;
      continue;
    }
    const float ramp = static_cast<float>(
        std::clamp((static_cast<double>(k) - lo) / (hi - lo), 0.0, 1.0));
    const float smooth = 1.0f - ramp;
    inv_freq_[k] = inv / static_cast<float>(yarn.factor) * (1.0f - smooth) + inv * smooth;
  }
}

RopeTable RopeTable::ForLayer(const model::ModelConfig& c, int64_t layer) {
  if (c.ratio(layer) == 0) return RopeTable(c.qk_rope_head_dim, c.rope_theta, model::YarnConfig{});
  return RopeTable(c.qk_rope_head_dim, c.compress_rope_theta, c.yarn);
}

void RopeTable::Apply(BF16* x, int64_t pos, bool inverse) const {
  const float p = static_cast<float>(pos);
  for (size_t k = 0; k < inv_freq_.size(); ++k) {
    const float angle = p * inv_freq_[k];  // rounded to FP32, as the reference's table
    const float c = static_cast<float>(std::cos(static_cast<double>(angle)));
    float s = static_cast<float>(std::sin(static_cast<double>(angle)));
    if (inverse) s = -s;
    const float re = Bf16ToF32(x[2 * k]), im = Bf16ToF32(x[2 * k + 1]);
    x[2 * k] = F32ToBf16(re * c - im * s);
    x[2 * k + 1] = F32ToBf16(re * s + im * c);
  }
}

}  // namespace dsv4::v4
