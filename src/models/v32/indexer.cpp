#include "models/v32/indexer.h"

#include <cmath>

#include "core/quant.h"
#include "models/common/hadamard.h"
#include "models/common/rope.h"

namespace dsv4::v32 {

void RotateIndexerVector(std::span<const float> inv, int64_t pos, BF16* x, int64_t dim) {
  models::ApplyRopeHalfSplit(inv, x, pos);
  models::Hadamard(x, dim);
}

float QuantizeIndexerQuery(const BF16* x, int64_t dim, uint8_t* codes) {
  const size_t n = static_cast<size_t>(dim);
  float s = 0.0f;
  ActQuantFp8({x, n}, n, {codes, n}, {&s, 1});
  return s;
}

float IndexerHeadWeight(float w, float q_scale, int64_t n_heads, int64_t dim) {
  const float head_scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(n_heads)));
  const float dim_scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(dim)));
  return w * head_scale * q_scale * dim_scale;
}

}  // namespace dsv4::v32
