// AVX-512 attention passes. Scores: 8 rows per tile against two head pairs, a register
// holding heads h (low half) and h + 1 (high half) for one row, so each (head, row) dot keeps
// the canonical lane order of kernels::Dot8. Values: 16 rows per tile, 64 output columns of
// two heads in registers, rows added in ascending order. Packed entries are decoded per tile
// into a per-thread buffer (E4M3 via FP16 patterns, times the block's power-of-two scale).
#include <algorithm>
#include <vector>

#include "kernels/cpu/attention_internal.h"
#include "kernels/cpu/linear_internal.h"
#include "kernels/cpu/simd.h"  // its pragmas cover every SIMD function defined below

namespace dsv4::kernels::internal {
namespace {

// Entry j decoded exactly (kv::DecodeKvEntry's values) into out FP32 [d].
DSV4_TARGET_AVX512 void DecodeEntry(const AttnRows& r, int64_t j, float* out) {
  const uint8_t* e = r.packed[j];
  const float* e8m0 = E8M0Table();
  const __m512 unscale = _mm512_set1_ps(simd::kE4M3Fp16Unscale);
  for (int64_t b = 0; b < r.d_nope / 64; ++b) {
    const __m512 scale = _mm512_set1_ps(e8m0[e[r.d_nope + b]]);
    for (int64_t k = b * 64; k < b * 64 + 64; k += 16) {
      // (code value × 2^-8) × 256 is the code value exactly; × the scale is one exact product.
      const __m512 v = _mm512_mul_ps(simd::E4M3x8x2(e + k, e + k + 8), unscale);
      _mm512_storeu_ps(out + k, _mm512_mul_ps(v, scale));
    }
  }
  const uint8_t* rope = e + r.d_nope + r.d_nope / 64;
  for (int64_t k = 0; k < r.rope_dim; k += 16) {
    _mm512_storeu_ps(out + r.d_nope + k, simd::Bf16x8x2(rope + 2 * k, rope + 2 * k + 16));
  }
}

// Pointers to rows [j0, j0 + count) as FP32, decoding packed ones into `buffer` [tile, d].
// Rows past count repeat the last one (their results are discarded).
DSV4_TARGET_AVX512 void TileRows(const AttnRows& r, int64_t j0, int64_t count, int tile,
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

// Scores of head pairs hp0 .. hp0 + kPairs - 1 (heads 2hp, 2hp + 1 of the range) over the
// tile's 8 rows: acc[p][i] = [dot(q_{2hp}, row i) lanes | dot(q_{2hp+1}, row i) lanes].
template <int kPairs>
DSV4_TARGET_AVX512 void ScorePairs(const float* qp, int64_t d, const float* const* rows,
                                   __m512 (*acc)[kScoreRows]) {
  for (int p = 0; p < kPairs; ++p) {
    for (int i = 0; i < kScoreRows; ++i) acc[p][i] = _mm512_setzero_ps();
  }
  for (int64_t s = 0; s < d / 8; ++s) {
    __m512 qv[kPairs];
    for (int p = 0; p < kPairs; ++p) qv[p] = _mm512_loadu_ps(qp + (p * (d / 8) + s) * 16);
    for (int i = 0; i < kScoreRows; ++i) {
      const __m512 kv = _mm512_broadcast_f32x8(_mm256_loadu_ps(rows[i] + 8 * s));
      for (int p = 0; p < kPairs; ++p)
        acc[p][i] = _mm512_add_ps(acc[p][i], _mm512_mul_ps(qv[p], kv));
    }
  }
}

}  // namespace

DSV4_TARGET_AVX512 void AttnScoresRangeAvx512(const AttnCall& c, int64_t h0, int64_t h1,
                                              int64_t j_begin, int64_t j_end, float* s) {
  const int64_t n = c.rows.n, d = c.rows.d, heads = h1 - h0;
  const int64_t pairs = (heads + 1) / 2;
  // qp FP32 [pairs][d/8][16]: [q_h step | q_{h+1} step]; an odd last head pairs with itself.
  thread_local std::vector<float> qp, buffer;
  qp.resize(static_cast<size_t>(pairs * d * 2));
  buffer.resize(static_cast<size_t>(kScoreRows * d));
  for (int64_t p = 0; p < pairs; ++p) {
    const float* lo = c.q + (h0 + 2 * p) * d;
    const float* hi = c.q + (h0 + std::min(2 * p + 1, heads - 1)) * d;
    for (int64_t st = 0; st < d / 8; ++st) {
      _mm512_storeu_ps(qp.data() + (p * (d / 8) + st) * 16,
                       simd::F32x8x2(lo + 8 * st, hi + 8 * st));
    }
  }
  const __m512 scale = _mm512_set1_ps(c.scale);
  for (int64_t j0 = j_begin; j0 < j_end; j0 += kScoreRows) {
    const int64_t count = std::min<int64_t>(kScoreRows, j_end - j0);
    const float* rows[kScoreRows];
    TileRows(c.rows, j0, count, kScoreRows, buffer.data(), rows);
    // (Lambdas do not inherit the target attribute: no intrinsics inside.)
    auto emit = [&](int64_t p, const float* out) {
      for (int64_t i = 0; i < count; ++i) {
        s[(2 * p) * n + j0 + i] = out[i];
        if (2 * p + 1 < heads) s[(2 * p + 1) * n + j0 + i] = out[8 + i];
      }
    };
    // Lanes 0-7 of a reduced pair: head 2p, rows 0-7; lanes 8-15: head 2p + 1.
    float out[2][16];
    int64_t p = 0;
    for (; p + 2 <= pairs; p += 2) {
      __m512 acc[2][kScoreRows];
      ScorePairs<2>(qp.data() + p * d * 2, d, rows, acc);
      _mm512_storeu_ps(out[0], _mm512_mul_ps(simd::ReduceLanes16(acc[0]), scale));
      _mm512_storeu_ps(out[1], _mm512_mul_ps(simd::ReduceLanes16(acc[1]), scale));
      emit(p, out[0]);
      emit(p + 1, out[1]);
    }
    if (p < pairs) {
      __m512 acc[1][kScoreRows];
      ScorePairs<1>(qp.data() + p * d * 2, d, rows, acc);
      _mm512_storeu_ps(out[0], _mm512_mul_ps(simd::ReduceLanes16(acc[0]), scale));
      emit(p, out[0]);
    }
  }
}

DSV4_TARGET_AVX512 void AttnScoresAvx512(const AttnCall& c, int64_t h0, int64_t h1, float* s,
                                         AttnPassState* /*st*/) {
  AttnScoresRangeAvx512(c, h0, h1, 0, c.rows.n, s);
}

DSV4_TARGET_AVX512 void AttnValuesAvx512(const AttnCall& c, int64_t h0, int64_t h1, const float* p,
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
      const bool two = h + 1 < heads;
      const float* p0 = p + h * n + j0;
      const float* p1 = p + (two ? h + 1 : h) * n + j0;
      float* a0 = acc + h * d;
      float* a1 = acc + (two ? h + 1 : h) * d;
      int64_t k = 0;
      for (; k + 64 <= d; k += 64) {
        __m512 x0[4], x1[4];
        for (int v = 0; v < 4; ++v) {
          x0[v] = _mm512_loadu_ps(a0 + k + 16 * v);
          x1[v] = _mm512_loadu_ps(a1 + k + 16 * v);
        }
        for (int64_t i = 0; i < count; ++i) {
          const __m512 w0 = _mm512_set1_ps(p0[i]), w1 = _mm512_set1_ps(p1[i]);
          for (int v = 0; v < 4; ++v) {
            const __m512 kv = _mm512_loadu_ps(rows[i] + k + 16 * v);
            x0[v] = _mm512_add_ps(x0[v], _mm512_mul_ps(w0, kv));
            x1[v] = _mm512_add_ps(x1[v], _mm512_mul_ps(w1, kv));
          }
        }
        // For an odd last head a1 == a0 and x1 == x0: the store order keeps it right.
        for (int v = 0; v < 4; ++v) {
          _mm512_storeu_ps(a1 + k + 16 * v, x1[v]);
          _mm512_storeu_ps(a0 + k + 16 * v, x0[v]);
        }
      }
      for (; k < d; k += 16) {
        __m512 x0 = _mm512_loadu_ps(a0 + k), x1 = _mm512_loadu_ps(a1 + k);
        for (int64_t i = 0; i < count; ++i) {
          const __m512 kv = _mm512_loadu_ps(rows[i] + k);
          x0 = _mm512_add_ps(x0, _mm512_mul_ps(_mm512_set1_ps(p0[i]), kv));
          x1 = _mm512_add_ps(x1, _mm512_mul_ps(_mm512_set1_ps(p1[i]), kv));
        }
        _mm512_storeu_ps(a1 + k, x1);
        _mm512_storeu_ps(a0 + k, x0);
      }
    }
  }
}

}  // namespace dsv4::kernels::internal
