// AVX-512 attention passes. Scores: 8 rows per tile against two head pairs, a register
// holding heads h (low half) and h + 1 (high half) for one row, so each (head, row) dot keeps
// the canonical lane order of kernels::Dot8. Values (64 output columns of two heads in
// registers) and the decoding of packed entries: attention_tiles.inc over simd::Avx512.
#define DSV4_VEC_TARGET DSV4_TARGET_AVX512
#include "kernels/cpu/attention_tiles.inc"

namespace dsv4::kernels::internal {
namespace {

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
                                              int64_t j_begin, int64_t j_end, float* s,
                                              AttnThreadScratch* scratch) {
  const int64_t n = c.rows.n, d = c.rows.d, heads = h1 - h0;
  const int64_t pairs = (heads + 1) / 2;
  // qp FP32 [pairs][d/8][16]: [q_h step | q_{h+1} step]; an odd last head pairs with itself.
  std::vector<float>& qp = scratch->head_pairs;
  std::vector<float>& buffer = scratch->rows;
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
    TileRows<simd::Avx512>(c.rows, j0, count, kScoreRows, buffer.data(), rows);
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
                                         AttnPassState* /*st*/, AttnThreadScratch* scratch) {
  AttnScoresRangeAvx512(c, h0, h1, 0, c.rows.n, s, scratch);
}

DSV4_TARGET_AVX512 void AttnValuesAvx512(const AttnCall& c, int64_t h0, int64_t h1, const float* p,
                                         float* acc, const AttnPassState& /*st*/,
                                         AttnThreadScratch* scratch) {
  AttnValues<simd::Avx512>(c, h0, h1, p, acc, scratch);
}

}  // namespace dsv4::kernels::internal
