// AVX2 indexer scores: 8 keys per tile, decoded once (one __m256 per key and step: the
// canonical lane order of kernels::Dot8) and scored head by head; the ReLU-weighted head sum
// runs on the 8 keys' dots as one vector, heads in ascending order.
#include <algorithm>
#include <vector>

#include "kernels/cpu/indexer_internal.h"
#include "kernels/cpu/linear_internal.h"
#include "kernels/cpu/simd.h"  // its pragmas cover every SIMD function defined below

namespace dsv4::kernels::internal {
namespace {

constexpr int kKeys = 8;

// kb FP32 [dim/8][kKeys][8]: step s of each key, decoded exactly.
DSV4_TARGET_AVX2 void DecodeTile(const uint8_t* const* rows, int64_t dim, float* kb) {
  const float* e8m0 = E8M0Table();
  for (int i = 0; i < kKeys; ++i) {
    for (int64_t c = 0; c < dim / 32; ++c) {
      __m256 v[4];
      simd::E2M1x32(rows[i] + 16 * c, v);
      const __m256 scale = _mm256_set1_ps(e8m0[rows[i][dim / 2 + c]]);
      for (int j = 0; j < 4; ++j) {
        _mm256_storeu_ps(kb + ((4 * c + j) * kKeys + i) * 8, _mm256_mul_ps(v[j], scale));
      }
    }
  }
}

DSV4_TARGET_AVX2 __m256 ScoreTile(const IndexerPrepared& q, const float* kb) {
  const int64_t dim = q.dim;
  __m256 total = _mm256_setzero_ps();
  for (int64_t h = 0; h < q.heads; ++h) {
    __m256 a[kKeys];
    for (int i = 0; i < kKeys; ++i) a[i] = _mm256_setzero_ps();
    const float* qh = q.q + h * dim;
    for (int64_t s = 0; s < dim / 8; ++s) {
      const __m256 qv = _mm256_loadu_ps(qh + 8 * s);
      const float* k = kb + s * kKeys * 8;
      for (int i = 0; i < kKeys; ++i) {
        a[i] = _mm256_add_ps(a[i], _mm256_mul_ps(qv, _mm256_loadu_ps(k + 8 * i)));
      }
    }
    const __m256 dot = simd::RoundBf16x8(simd::ReduceLanes8(a));
    total = _mm256_add_ps(
        total, simd::RoundBf16x8(_mm256_mul_ps(_mm256_set1_ps(q.w[h]), simd::Relu8(dot))));
  }
  return simd::RoundBf16x8(total);
}

}  // namespace

DSV4_TARGET_AVX2 void IndexerScoresAvx2(const IndexerPrepared& q, const PagedRows& keys,
                                        int64_t begin, int64_t end, float* scores) {
  thread_local std::vector<float> kb;
  kb.resize(static_cast<size_t>(q.dim * kKeys));
  for (int64_t t0 = begin; t0 < end; t0 += kKeys) {
    const int64_t count = std::min<int64_t>(kKeys, end - t0);
    const uint8_t* rows[kKeys];  // a partial tile repeats its last key
    for (int i = 0; i < kKeys; ++i) rows[i] = keys.Row(t0 + std::min<int64_t>(i, count - 1));
    DecodeTile(rows, q.dim, kb.data());
    float out[kKeys];
    _mm256_storeu_ps(out, ScoreTile(q, kb.data()));
    std::copy_n(out, count, scores + (t0 - begin));
  }
}

}  // namespace dsv4::kernels::internal
