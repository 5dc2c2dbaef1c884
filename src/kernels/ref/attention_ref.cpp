#include "kernels/ref/attention_ref.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "kernels/ref/attention_exp_ref.h"

namespace dsv4::kernels::ref {

void SparseAttention(const BF16* q, const float* kv, int64_t n, const float* sink, int64_t heads,
                     int64_t d, float scale, BF16* out) {
  std::vector<float> s(static_cast<size_t>(n));
  std::vector<float> acc(static_cast<size_t>(d));
  for (int64_t h = 0; h < heads; ++h) {
    float mx = -INFINITY;
    for (int64_t j = 0; j < n; ++j) {
      float dot = 0.0f;
      for (int64_t k = 0; k < d; ++k) dot += Bf16ToF32(q[h * d + k]) * kv[j * d + k];
      s[j] = dot * scale;
      mx = std::max(mx, s[j]);
    }
    float den = 0.0f;
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (int64_t j = 0; j < n; ++j) {
      const float e = ExpF(s[j] - mx);
      den += e;
      const float p = RoundBf16(e);
      for (int64_t k = 0; k < d; ++k) acc[k] += p * kv[j * d + k];
    }
    den += ExpF(sink[h] - mx);
    for (int64_t k = 0; k < d; ++k) out[h * d + k] = F32ToBf16(acc[k] / den);
  }
}

void IndexerScores(const BF16* q, const BF16* w, const float* keys, int64_t n, int64_t heads,
                   int64_t dim, float* scores) {
  for (int64_t i = 0; i < n; ++i) {
    float total = 0.0f;
    for (int64_t h = 0; h < heads; ++h) {
      float dot = 0.0f;
      for (int64_t k = 0; k < dim; ++k) dot += Bf16ToF32(q[h * dim + k]) * keys[i * dim + k];
      const float relu = std::max(RoundBf16(dot), 0.0f);
      total += RoundBf16(Bf16ToF32(w[h]) * relu);
    }
    scores[i] = RoundBf16(total);
  }
}

std::vector<int64_t> TopK(const float* scores, int64_t n, int64_t k) {
  std::vector<int64_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  k = std::min(k, n);
  std::stable_sort(idx.begin(), idx.end(),
                   [&](int64_t a, int64_t b) { return scores[a] > scores[b]; });
  idx.resize(static_cast<size_t>(k));
  std::sort(idx.begin(), idx.end());
  return idx;
}

}  // namespace dsv4::kernels::ref
