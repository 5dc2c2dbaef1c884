#include "models/v4/ops.h"

#include <cmath>

namespace dsv4::v4 {

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

}  // namespace dsv4::v4
