#include "model/v32/indexer.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/fp8.h"
#include "core/quant.h"
#include "kernels/cpu/linear.h"
#include "model/rope.h"
#include "model/v32/ops.h"

namespace dsv4::v32 {

void RotateIndexerVector(std::span<const float> inv, int64_t pos, BF16* x, int64_t dim) {
  model::ApplyRopeHalfSplit(inv, x, pos);
  Hadamard(x, dim);
}

float QuantizeIndexerQuery(const BF16* x, int64_t dim, float* codes) {
  std::vector<uint8_t> bytes(static_cast<size_t>(dim));
  float s = 0.0f;
  ActQuantFp8({x, static_cast<size_t>(dim)}, static_cast<size_t>(dim), bytes, {&s, 1});
  for (int64_t k = 0; k < dim; ++k) codes[k] = E4M3ToF32(bytes[k]);
  return s;
}

float IndexerHeadWeight(float w, float q_scale, int64_t n_heads, int64_t dim) {
  const float head_scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(n_heads)));
  const float dim_scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(dim)));
  return w * head_scale * q_scale * dim_scale;
}

void IndexerScores(ThreadPool& pool, const float* q, const float* hw, const float* k,
                   const float* k_scale, int64_t n, int64_t heads, int64_t dim, float* scores) {
  pool.ParallelFor(n, 256, [&](int64_t begin, int64_t end) {
    for (int64_t s = begin; s < end; ++s) {
      float total = 0.0f;
      for (int64_t h = 0; h < heads; ++h) {
        total += std::max(kernels::Dot8(q + h * dim, k + s * dim, dim), 0.0f) * hw[h];
      }
      scores[s] = total * k_scale[s];
    }
  });
}

}  // namespace dsv4::v32
