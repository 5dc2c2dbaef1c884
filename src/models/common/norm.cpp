#include "models/common/norm.h"

#include <cmath>

namespace dsv4::models {
namespace {

float ToF32(float v) { return v; }
float ToF32(BF16 v) { return Bf16ToF32(v); }

// One loop for both input types: every value is read as FP32 before any arithmetic, so the
// BF16 and FP32 rows of equal values give equal results.
template <typename T>
void RmsNormRow(const T* x, const float* w, int64_t dim, float eps, BF16* y) {
  float sq = 0.0f;
  for (int64_t i = 0; i < dim; ++i) {
    const float v = ToF32(x[i]);
    sq += v * v;
  }
  const float r = 1.0f / std::sqrt(sq / static_cast<float>(dim) + eps);
  for (int64_t i = 0; i < dim; ++i) y[i] = F32ToBf16(ToF32(x[i]) * r * w[i]);
}

}  // namespace

void RmsNorm(const BF16* x, const float* w, int64_t dim, float eps, BF16* y) {
  RmsNormRow(x, w, dim, eps, y);
}

void RmsNormF32(const float* x, const float* w, int64_t dim, float eps, BF16* y) {
  RmsNormRow(x, w, dim, eps, y);
}

}  // namespace dsv4::models
