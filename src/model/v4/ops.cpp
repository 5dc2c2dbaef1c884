#include "model/v4/ops.h"

#include <bit>
#include <cmath>
#include <vector>

namespace dsv4::v4 {

void RmsNorm(const BF16* x, const float* w, int64_t dim, float eps, BF16* y) {
  float sq = 0.0f;
  for (int64_t i = 0; i < dim; ++i) {
    const float v = Bf16ToF32(x[i]);
    sq += v * v;
  }
  const float r = 1.0f / std::sqrt(sq / static_cast<float>(dim) + eps);
  for (int64_t i = 0; i < dim; ++i) y[i] = F32ToBf16(Bf16ToF32(x[i]) * r * w[i]);
}

void HeadRmsNormBf16(BF16* x, int64_t dim, float eps) {
  float sum = 0.0f;
  for (int64_t i = 0; i < dim; ++i) {
    const float v = Bf16ToF32(x[i]);
    sum += RoundBf16(v * v);
  }
  const float mean = RoundBf16(sum / static_cast<float>(dim));
  const float r = RoundBf16(1.0f / std::sqrt(RoundBf16(mean + eps)));
  for (int64_t i = 0; i < dim; ++i) x[i] = F32ToBf16(Bf16ToF32(x[i]) * r);
}

void Hadamard(BF16* x, int64_t n) {
  // Direct signed sums in ascending j (the order of the matrix product x·Hᵀ); n is small.
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = Bf16ToF32(x[i]);
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(n)));
  for (int64_t i = 0; i < n; ++i) {
    float acc = 0.0f;
    for (int64_t j = 0; j < n; ++j) {
      acc += (std::popcount(static_cast<uint64_t>(i & j)) % 2 == 0) ? v[j] : -v[j];
    }
    x[i] = F32ToBf16(acc * scale);
  }
}

}  // namespace dsv4::v4
