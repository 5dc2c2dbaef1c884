#include "models/common/hadamard.h"

#include <bit>
#include <cmath>
#include <vector>

#include "core/check.h"

namespace dsv4::models {

void HadamardF32(float* v, int64_t n) {
  DSV4_DCHECK(n > 0 && std::has_single_bit(static_cast<uint64_t>(n)));
  // Strides 1 and 2 together on groups of 4 (the same butterflies in the same order), so
  // every loop below runs over independent lanes and vectorises.
  int64_t h = 1;
  if (n >= 4) {
    for (int64_t i = 0; i < n; i += 4) {
      const float b0 = v[i] + v[i + 1], b1 = v[i] - v[i + 1];
      const float b2 = v[i + 2] + v[i + 3], b3 = v[i + 2] - v[i + 3];
      v[i] = b0 + b2;
      v[i + 1] = b1 + b3;
      v[i + 2] = b0 - b2;
      v[i + 3] = b1 - b3;
    }
    h = 4;
  }
  for (; h < n; h *= 2) {
    for (int64_t i = 0; i < n; i += 2 * h) {
      float* lo = v + i;
      float* hi = v + i + h;
      for (int64_t j = 0; j < h; ++j) {
        const float a = lo[j], b = hi[j];
        lo[j] = a + b;
        hi[j] = a - b;
      }
    }
  }
}

float HadamardScale(int64_t n) {
  return static_cast<float>(1.0 / std::sqrt(static_cast<double>(n)));
}

void Hadamard(BF16* x, int64_t n) {
  DSV4_CHECK(n > 0 && std::has_single_bit(static_cast<uint64_t>(n)));
  constexpr int64_t kStack = 1024;  // the models' n is 128; larger n takes the heap path
  float stack[kStack];
  std::vector<float> heap;
  float* v = stack;
  if (n > kStack) {
    heap.resize(static_cast<size_t>(n));
    v = heap.data();
  }
  for (int64_t i = 0; i < n; ++i) v[i] = Bf16ToF32(x[i]);
  HadamardF32(v, n);
  const float scale = HadamardScale(n);
  for (int64_t i = 0; i < n; ++i) x[i] = F32ToBf16(v[i] * scale);
}

}  // namespace dsv4::models
