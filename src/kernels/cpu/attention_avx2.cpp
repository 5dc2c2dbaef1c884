// AVX2 attention passes. Scores: 8 rows per tile, one __m256 per (head, row) dot (the
// canonical lane order of kernels::Dot8), reduced 8 rows at a time. Values: 16 rows per
// tile, 32 output columns of two heads in registers, rows added in ascending order. Packed
// entries are decoded per tile into a per-thread buffer.
#include <algorithm>
#include <vector>

#include "kernels/cpu/attention_internal.h"
#include "kernels/cpu/linear_internal.h"
#include "kernels/cpu/simd.h"  // its pragmas cover every SIMD function defined below

namespace dsv4::kernels::internal {
namespace {

DSV4_TARGET_AVX2 void DecodeEntry(const AttnRows& r, int64_t j, float* out) {
  const uint8_t* e = r.packed[j];
  const float* e8m0 = E8M0Table();
  const __m256 unscale = _mm256_set1_ps(simd::kE4M3Fp16Unscale);
  for (int64_t b = 0; b < r.d_nope / 64; ++b) {
    const __m256 scale = _mm256_set1_ps(e8m0[e[r.d_nope + b]]);
    for (int64_t k = b * 64; k < b * 64 + 64; k += 8) {
      const __m256 v = _mm256_mul_ps(simd::E4M3x8(e + k), unscale);  // the code value, exactly
      _mm256_storeu_ps(out + k, _mm256_mul_ps(v, scale));
    }
  }
  const uint8_t* rope = e + r.d_nope + r.d_nope / 64;
  for (int64_t k = 0; k < r.rope_dim; k += 8) {
    _mm256_storeu_ps(out + r.d_nope + k, simd::Bf16x8(rope + 2 * k));
  }
}

DSV4_TARGET_AVX2 void TileRows(const AttnRows& r, int64_t j0, int64_t count, int tile,
                               float* buffer, const float** rows) {
  for (int i = 0; i < tile; ++i) {
    const int64_t j = j0 + std::min<int64_t>(i, count - 1);
    if (r.dense != nullptr) {
      rows[i] = r.dense + j * r.d;
    } else if (i < count) {
      DecodeEntry(r, j, buffer + i * r.d);
      rows[i] = buffer + i * r.d;
    } else {
      rows[i] = rows[count - 1];
    }
  }
}

constexpr int kScoreRows = 8;
constexpr int kValueRows = 16;

}  // namespace

DSV4_TARGET_AVX2 void AttnScoresAvx2(const AttnCall& c, int64_t h0, int64_t h1, float* s,
                                     AttnPassState* /*st*/) {
  const int64_t n = c.rows.n, d = c.rows.d;
  thread_local std::vector<float> buffer;
  buffer.resize(static_cast<size_t>(kScoreRows * d));
  const __m256 scale = _mm256_set1_ps(c.scale);
  for (int64_t j0 = 0; j0 < n; j0 += kScoreRows) {
    const int64_t count = std::min<int64_t>(kScoreRows, n - j0);
    const float* rows[kScoreRows];
    TileRows(c.rows, j0, count, kScoreRows, buffer.data(), rows);
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

DSV4_TARGET_AVX2 void AttnValuesAvx2(const AttnCall& c, int64_t h0, int64_t h1, const float* p,
                                     float* acc, const AttnPassState& /*st*/) {
  const int64_t n = c.rows.n, d = c.rows.d, heads = h1 - h0;
  thread_local std::vector<float> buffer;
  buffer.resize(static_cast<size_t>(kValueRows * d));
  std::fill(acc, acc + heads * d, 0.0f);
  for (int64_t j0 = 0; j0 < n; j0 += kValueRows) {
    const int64_t count = std::min<int64_t>(kValueRows, n - j0);
    const float* rows[kValueRows];
    TileRows(c.rows, j0, count, kValueRows, buffer.data(), rows);
    for (int64_t h = 0; h < heads; h += 2) {
      const int64_t h_hi = h + 1 < heads ? h + 1 : h;  // an odd last head pairs with itself
      const float* p0 = p + h * n + j0;
      const float* p1 = p + h_hi * n + j0;
      float* a0 = acc + h * d;
      float* a1 = acc + h_hi * d;
      for (int64_t k = 0; k < d; k += 16) {
        __m256 x0[2], x1[2];
        for (int v = 0; v < 2; ++v) {
          x0[v] = _mm256_loadu_ps(a0 + k + 8 * v);
          x1[v] = _mm256_loadu_ps(a1 + k + 8 * v);
        }
        for (int64_t i = 0; i < count; ++i) {
          const __m256 w0 = _mm256_set1_ps(p0[i]), w1 = _mm256_set1_ps(p1[i]);
          for (int v = 0; v < 2; ++v) {
            const __m256 kv = _mm256_loadu_ps(rows[i] + k + 8 * v);
            x0[v] = _mm256_add_ps(x0[v], _mm256_mul_ps(w0, kv));
            x1[v] = _mm256_add_ps(x1[v], _mm256_mul_ps(w1, kv));
          }
        }
        for (int v = 0; v < 2; ++v) {
          _mm256_storeu_ps(a1 + k + 8 * v, x1[v]);
          _mm256_storeu_ps(a0 + k + 8 * v, x0[v]);
        }
      }
    }
  }
}

}  // namespace dsv4::kernels::internal
