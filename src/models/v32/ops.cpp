#include "models/v32/ops.h"

#include <cmath>
#include <vector>

#include "models/common/norm.h"

namespace dsv4::v32 {

void AddRmsNorm(const BF16* f, BF16* residual, const float* w, int64_t dim, float eps, BF16* y) {
  std::vector<float> s(static_cast<size_t>(dim));
  for (int64_t i = 0; i < dim; ++i) {
    s[i] = Bf16ToF32(f[i]) + Bf16ToF32(residual[i]);
    residual[i] = F32ToBf16(s[i]);
  }
  models::RmsNormF32(s.data(), w, dim, eps, y);
}

void LayerNorm(const BF16* x, const float* w, const float* b, int64_t dim, float eps, BF16* y) {
  std::vector<float> v(static_cast<size_t>(dim));
  float sum = 0.0f;
  for (int64_t i = 0; i < dim; ++i) {
    v[i] = Bf16ToF32(x[i]);
    sum += v[i];
  }
  const float mean = sum / static_cast<float>(dim);
  float var = 0.0f;
  for (int64_t i = 0; i < dim; ++i) var += (v[i] - mean) * (v[i] - mean);
  const float r = 1.0f / std::sqrt(var / static_cast<float>(dim) + eps);
  for (int64_t i = 0; i < dim; ++i) y[i] = F32ToBf16((v[i] - mean) * r * w[i] + b[i]);
}

}  // namespace dsv4::v32
