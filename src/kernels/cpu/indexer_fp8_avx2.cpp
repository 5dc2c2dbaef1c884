// AVX2 FP8 indexer scores: 8 keys per tile, decoded once (E4M3 through FP16: exactly 2^-8
// times the code value; one __m256 per key and step, the canonical lane order of
// kernels::Dot8) and scored head by head. Products of E4M3 values are exact, so FMA rounds as
// multiply-then-add; the 8 keys' dots are rescaled by 2^8 (exact) and the ReLU-weighted head
// sum runs on them as one vector, heads in ascending order.
#include <algorithm>
#include <vector>

#include "kernels/cpu/indexer_fp8_internal.h"
#include "kernels/cpu/simd.h"  // its pragmas cover every SIMD function defined below

namespace dsv4::kernels::internal {
namespace {

constexpr int kKeys = 8;

// kb FP32 [dim/8][kKeys][8]: step s of each key, 2^-8 times its code values.
DSV4_TARGET_AVX2 void DecodeTile(const uint8_t* const* rows, int64_t dim, float* kb) {
  for (int i = 0; i < kKeys; ++i) {
    for (int64_t s = 0; s < dim / 8; ++s) {
      _mm256_storeu_ps(kb + (s * kKeys + i) * 8, simd::E4M3x8(rows[i] + 8 * s));
    }
  }
}

// The 8 keys' scores before the key scales: Σ_h max(d_h, 0) · w_h.
DSV4_TARGET_AVX2 __m256 ScoreTile(const IndexerFp8Prepared& q, const float* kb) {
  const int64_t dim = q.dim;
  const __m256 unscale = _mm256_set1_ps(simd::kE4M3Fp16Unscale);
  __m256 total = _mm256_setzero_ps();
  for (int64_t h = 0; h < q.heads; ++h) {
    __m256 a[kKeys];
    for (int i = 0; i < kKeys; ++i) a[i] = _mm256_setzero_ps();
    const float* qh = q.q + h * dim;
    for (int64_t s = 0; s < dim / 8; ++s) {
      const __m256 qv = _mm256_loadu_ps(qh + 8 * s);
      const float* k = kb + s * kKeys * 8;
      for (int i = 0; i < kKeys; ++i) a[i] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k + 8 * i), a[i]);
    }
    const __m256 dot = _mm256_mul_ps(simd::ReduceLanes8(a), unscale);
    total = _mm256_add_ps(total, _mm256_mul_ps(simd::Relu8(dot), _mm256_set1_ps(q.w[h])));
  }
  return total;
}

}  // namespace

DSV4_TARGET_AVX2 void IndexerFp8ScoresAvx2(const IndexerFp8Prepared& q, const PagedRows& keys,
                                           int64_t begin, int64_t end, float* scores) {
  thread_local std::vector<float> kb;
  kb.resize(static_cast<size_t>(q.dim * kKeys));
  for (int64_t t0 = begin; t0 < end; t0 += kKeys) {
    const int64_t count = std::min<int64_t>(kKeys, end - t0);
    const uint8_t* rows[kKeys];  // a partial tile repeats its last key
    float scales[kKeys];
    for (int i = 0; i < kKeys; ++i) {
      rows[i] = keys.Row(t0 + std::min<int64_t>(i, count - 1));
      scales[i] = IndexerKeyFp8Scale(rows[i], q.dim);
    }
    DecodeTile(rows, q.dim, kb.data());
    float out[kKeys];
    _mm256_storeu_ps(out, _mm256_mul_ps(ScoreTile(q, kb.data()), _mm256_loadu_ps(scales)));
    std::copy_n(out, count, scores + (t0 - begin));
  }
}

}  // namespace dsv4::kernels::internal
