#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <queue>

#include "core/kv_entry.h"
#include "kernels/cpu/attention_internal.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/linear_internal.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/workspace_internal.h"

namespace dsv4::kernels {

namespace internal {

const float* AttnRowScalar(const AttnRows& r, int64_t j, float* buffer) {
  if (r.dense != nullptr) return r.dense + j * r.d;
  DecodeKvEntry(r.packed[j], r.d_nope, r.rope_dim, buffer);
  return buffer;
}

void AttnScoresScalar(const AttnCall& c, int64_t h0, int64_t h1, float* s, AttnPassState* /*st*/,
                      AttnThreadScratch* scratch) {
  const int64_t n = c.rows.n, d = c.rows.d;
  std::vector<float>& buffer = scratch->rows;
  buffer.resize(static_cast<size_t>(d));
  for (int64_t j = 0; j < n; ++j) {
    const float* row = AttnRowScalar(c.rows, j, buffer.data());
    for (int64_t h = h0; h < h1; ++h) s[(h - h0) * n + j] = Dot8(c.q + h * d, row, d) * c.scale;
  }
}

void AttnSoftmaxScalar(const float* sink, int64_t heads, int64_t n, float* s, float* den,
                       AttnThreadScratch* /*scratch*/) {
  AttnSoftmaxRows(sink, heads, n, s, den);
}

void AttnNormalizeScalar(const float* acc, const float* den, int64_t heads, int64_t d,
                         BF16* out) {
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t k = 0; k < d; ++k) out[h * d + k] = F32ToBf16(acc[h * d + k] / den[h]);
  }
}

void AttnValuesScalar(const AttnCall& c, int64_t h0, int64_t h1, const float* p, float* acc,
                      const AttnPassState& /*st*/, AttnThreadScratch* scratch) {
  const int64_t n = c.rows.n, d = c.rows.d;
  std::vector<float>& buffer = scratch->rows;
  buffer.resize(static_cast<size_t>(d));
  std::fill(acc, acc + (h1 - h0) * d, 0.0f);
  for (int64_t j = 0; j < n; ++j) {
    const float* row = AttnRowScalar(c.rows, j, buffer.data());
    for (int64_t h = h0; h < h1; ++h) {
      const float pj = p[(h - h0) * n + j];
      float* a = acc + (h - h0) * d;
      for (int64_t k = 0; k < d; ++k) a[k] += pj * row[k];
    }
  }
}

}  // namespace internal

namespace {

using internal::AttnCall;
using internal::AttnPassState;
using internal::AttnThreadScratch;
using ScoresFn = void (*)(const AttnCall&, int64_t, int64_t, float*, AttnPassState*,
                          AttnThreadScratch*);
using ValuesFn = void (*)(const AttnCall&, int64_t, int64_t, const float*, float*,
                          const AttnPassState&, AttnThreadScratch*);
using SoftmaxFn = void (*)(const float*, int64_t, int64_t, float*, float*, AttnThreadScratch*);
using NormalizeFn = void (*)(const float*, const float*, int64_t, int64_t, BF16*);

// Scores over all rows, then the softmax weights in the scalar order of the reference
// (max, e^{s-m} with ExpF, the denominator, p = bf16(e)), then the weighted value sum.
void Attend(ThreadPool& pool, const BF16* q, const internal::AttnRows& rows, const float* sink,
            int64_t heads, float scale, BF16* out, internal::AttnScratch* ws) {
  const int64_t n = rows.n, d = rows.d;
  ScoresFn scores = internal::AttnScoresScalar;
  ValuesFn values = internal::AttnValuesScalar;
  SoftmaxFn softmax = internal::AttnSoftmaxScalar;
  NormalizeFn normalize = internal::AttnNormalizeScalar;
  const bool simd_ok = d % 16 == 0 && (rows.packed == nullptr || rows.d_nope % 64 == 0);
  const bool bf16_ok = simd_ok && rows.packed != nullptr && rows.rope_dim % 32 == 0;
  const Isa isa = ActiveIsa();
  if (isa == Isa::kAvx512 || isa == Isa::kAvx512Bf16) {
    softmax = internal::AttnSoftmaxAvx512;
    normalize = internal::AttnNormalizeAvx512;
  }
  if (isa == Isa::kAvx2) softmax = internal::AttnSoftmaxAvx2;
  if (bf16_ok && isa == Isa::kAvx512Bf16) {
    scores = internal::AttnScoresAvx512Bf16;
    values = internal::AttnValuesAvx512Bf16;
  } else if (simd_ok && (isa == Isa::kAvx512 || isa == Isa::kAvx512Bf16)) {
    scores = internal::AttnScoresAvx512;
    values = internal::AttnValuesAvx512;
  } else if (simd_ok && isa == Isa::kAvx2) {
    scores = internal::AttnScoresAvx2;
    values = internal::AttnValuesAvx2;
  }
  std::vector<float>& qf = ws->q;
  std::vector<float>& s = ws->s;
  std::vector<float>& acc = ws->acc;
  qf.resize(static_cast<size_t>(heads * d));
  s.resize(static_cast<size_t>(heads * n));
  acc.resize(static_cast<size_t>(heads * d));
  for (int64_t i = 0; i < heads * d; ++i) qf[i] = Bf16ToF32(q[i]);
  const AttnCall call{qf.data(), rows, scale};
  ws->threads.Reserve(pool);
  auto attend_heads = [&](int64_t h0, int64_t h1, int t) {
    AttnThreadScratch* scratch = &ws->threads[t];
    AttnPassState state;
    scores(call, h0, h1, s.data() + h0 * n, &state, scratch);
    std::vector<float>& den = scratch->den;
    den.resize(static_cast<size_t>(h1 - h0));
    softmax(sink + h0, h1 - h0, n, s.data() + h0 * n, den.data(), scratch);
    values(call, h0, h1, s.data() + h0 * n, acc.data() + h0 * d, state, scratch);
    normalize(acc.data() + h0 * d, den.data(), h1 - h0, d, out + h0 * d);
  };
  pool.ParallelForWithThread(heads, GrainForWork(2 * n * d), attend_heads);
}

}  // namespace

void SparseAttention(ThreadPool& pool, const BF16* q, const float* kv, int64_t n, const float* sink,
                     int64_t heads, int64_t d, float scale, BF16* out, Workspace* ws) {
  internal::AttnRows rows;
  rows.dense = kv;
  rows.n = n;
  rows.d = d;
  Attend(pool, q, rows, sink, heads, scale, out, &ws->state().attention);
}

void SparseAttentionPacked(ThreadPool& pool, const BF16* q, const uint8_t* const* entries,
                           int64_t n, const float* sink, int64_t heads, int64_t d_nope,
                           int64_t rope_dim, float scale, BF16* out, Workspace* ws) {
  internal::AttnRows rows;
  rows.packed = entries;
  rows.n = n;
  rows.d_nope = d_nope;
  rows.rope_dim = rope_dim;
  rows.d = d_nope + rope_dim;
  Attend(pool, q, rows, sink, heads, scale, out, &ws->state().attention);
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
        const float relu =
            std::max(RoundBf16(Dot8(qf.data() + h * dim, keys + i * dim, dim)), 0.0f);
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
