#include "models/v32/ops.h"

#include <cmath>
#include <vector>

namespace dsv4::v32 {
namespace {

// RMSNorm of an FP32 row, BF16 out.
void RmsNormF32(const float* x, const float* w, int64_t dim, float eps, BF16* y) {
  float sq = 0.0f;
  for (int64_t i = 0; i < dim; ++i) sq += x[i] * x[i];
  const float r = 1.0f / std::sqrt(sq / static_cast<float>(dim) + eps);
  for (int64_t i = 0; i < dim; ++i) y[i] = F32ToBf16(x[i] * r * w[i]);
}

}  // namespace

void RmsNorm(const BF16* x, const float* w, int64_t dim, float eps, BF16* y) {
  std::vector<float> v(static_cast<size_t>(dim));
  for (int64_t i = 0; i < dim; ++i) v[i] = Bf16ToF32(x[i]);
  RmsNormF32(v.data(), w, dim, eps, y);
}

void AddRmsNorm(const BF16* f, BF16* residual, const float* w, int64_t dim, float eps, BF16* y) {
  std::vector<float> s(static_cast<size_t>(dim));
  for (int64_t i = 0; i < dim; ++i) {
    s[i] = Bf16ToF32(f[i]) + Bf16ToF32(residual[i]);
    residual[i] = F32ToBf16(s[i]);
  }
  RmsNormF32(s.data(), w, dim, eps, y);
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

void Hadamard(BF16* x, int64_t n) {
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

}  // namespace dsv4::v32
