#include "kernels/ref/indexer_fp8_ref.h"

#include <algorithm>
#include <cstring>

#include "core/fp8.h"

namespace dsv4::kernels::ref {

void IndexerScoresFp8(const uint8_t* q, const float* w, const uint8_t* keys, int64_t n,
                      int64_t heads, int64_t dim, float* scores) {
  const int64_t row_bytes = dim + 4;
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* key = keys + i * row_bytes;
    float total = 0.0f;
    for (int64_t h = 0; h < heads; ++h) {
      float lane[8] = {};
      for (int64_t d = 0; d < dim; ++d) {
        const float product = E4M3ToF32(q[h * dim + d]) * E4M3ToF32(key[d]);
        lane[d % 8] = lane[d % 8] + product;
      }
      const float dot =
          ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
      const float relu = std::max(dot, 0.0f);
      const float term = relu * w[h];
      total = total + term;
    }
    float scale;
    std::memcpy(&scale, key + dim, sizeof(scale));
    scores[i] = total * scale;
  }
}

}  // namespace dsv4::kernels::ref
