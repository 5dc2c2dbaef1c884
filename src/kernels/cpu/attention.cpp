#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <queue>

#include "kernels/cpu/linear.h"

namespace dsv4::kernels {

void SparseAttention(ThreadPool& pool, const BF16* q, const float* kv, int64_t n,
                     const float* sink, int64_t heads, int64_t d, float scale, BF16* out) {
  pool.ParallelFor(heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> qf(static_cast<size_t>(d)), s(static_cast<size_t>(n));
    std::vector<float> acc(static_cast<size_t>(d));
    for (int64_t h = begin; h < end; ++h) {
      for (int64_t k = 0; k < d; ++k) qf[k] = Bf16ToF32(q[h * d + k]);
      float mx = -INFINITY;
      for (int64_t j = 0; j < n; ++j) {
        s[j] = Dot8(qf.data(), kv + j * d, d) * scale;
        mx = std::max(mx, s[j]);
      }
      float den = 0.0f;
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t j = 0; j < n; ++j) {
        const float e = std::exp(s[j] - mx);
        den += e;
        const float p = RoundBf16(e);
        const float* row = kv + j * d;
        for (int64_t k = 0; k < d; ++k) acc[k] += p * row[k];
      }
      den += std::exp(sink[h] - mx);
      for (int64_t k = 0; k < d; ++k) out[h * d + k] = F32ToBf16(acc[k] / den);
    }
  });
}

void IndexerScores(ThreadPool& pool, const BF16* q, const BF16* w, const float* keys, int64_t n,
                   int64_t heads, int64_t dim, float* scores) {
  std::vector<float> qf(static_cast<size_t>(heads * dim)), wf(static_cast<size_t>(heads));
  for (int64_t i = 0; i < heads * dim; ++i) qf[i] = Bf16ToF32(q[i]);
  for (int64_t h = 0; h < heads; ++h) wf[h] = Bf16ToF32(w[h]);
  pool.ParallelFor(n, 256, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      float total = 0.0f;
      for (int64_t h = 0; h < heads; ++h) {
        const float relu = std::max(RoundBf16(Dot8(qf.data() + h * dim, keys + i * dim, dim)), 0.0f);
        total += RoundBf16(wf[h] * relu);
      }
      scores[i] = RoundBf16(total);
    }
  });
}

std::vector<int64_t> TopK(const float* scores, int64_t n, int64_t k) {
  k = std::min(k, n);
  // better(a, b): a ranks above b (higher score, or equal score and lower index). With it as
  // the heap order, the top is the worst of the best k kept so far.
  auto better = [&](int64_t a, int64_t b) {
    return scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
  };
  std::priority_queue<int64_t, std::vector<int64_t>, decltype(better)> heap(better);
  for (int64_t i = 0; i < n && k > 0; ++i) {
    if (static_cast<int64_t>(heap.size()) < k) {
      heap.push(i);
    } else if (better(i, heap.top())) {
      heap.pop();
      heap.push(i);
    }
  }
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(k));
  while (!heap.empty()) {
    out.push_back(heap.top());
    heap.pop();
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace dsv4::kernels
