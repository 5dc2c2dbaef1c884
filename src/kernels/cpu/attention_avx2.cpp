// AVX2 attention passes. Scores: 8 rows per tile, one __m256 per (head, row) dot (the
// canonical lane order of kernels::Dot8), reduced 8 rows at a time. Values and the decoding
// of packed entries (per tile, into a per-thread buffer): attention_tiles.inc over simd::Avx2.
#define DSV4_VEC_TARGET DSV4_TARGET_AVX2
#include "kernels/cpu/attention_tiles.inc"

namespace dsv4::kernels::internal {

DSV4_TARGET_AVX2 void AttnScoresAvx2(const AttnCall& c, int64_t h0, int64_t h1, float* s,
                                     AttnPassState* /*st*/, AttnThreadScratch* scratch) {
  using V = simd::Avx2;
  const int64_t n = c.rows.n, d = c.rows.d;
  std::vector<float>& buffer = scratch->rows;
  buffer.resize(static_cast<size_t>(kScoreRows * d));
  const __m256 scale = _mm256_set1_ps(c.scale);
  for (int64_t j0 = 0; j0 < n; j0 += kScoreRows) {
    const int64_t count = std::min<int64_t>(kScoreRows, n - j0);
    const float* rows[kScoreRows];
    TileRows<V>(c.rows, j0, count, kScoreRows, buffer.data(), rows);
    for (int64_t h = h0; h < h1; ++h) {
      __m256 a[kScoreRows];
      for (int i = 0; i < kScoreRows; ++i) a[i] = _mm256_setzero_ps();
      const float* qh = c.q + h * d;
      for (int64_t k = 0; k < d; k += 8) {
        const __m256 qv = _mm256_loadu_ps(qh + k);
        for (int i = 0; i < kScoreRows; ++i) {
          a[i] = _mm256_add_ps(a[i], _mm256_mul_ps(qv, _mm256_loadu_ps(rows[i] + k)));
        }
      }
      float out[kScoreRows];
      _mm256_storeu_ps(out, _mm256_mul_ps(simd::ReduceLanes8(a), scale));
      std::copy_n(out, count, s + (h - h0) * n + j0);
    }
  }
}

DSV4_TARGET_AVX2 void AttnSoftmaxAvx2(const float* sink, int64_t heads, int64_t n, float* s,
                                      float* den, AttnThreadScratch* /*scratch*/) {
  AttnSoftmaxRows(sink, heads, n, s, den);
}

DSV4_TARGET_AVX2 void AttnValuesAvx2(const AttnCall& c, int64_t h0, int64_t h1, const float* p,
                                     float* acc, const AttnPassState& /*st*/,
                                     AttnThreadScratch* scratch) {
  AttnValues<simd::Avx2>(c, h0, h1, p, acc, scratch);
}

}  // namespace dsv4::kernels::internal
