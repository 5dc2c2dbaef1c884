// The attention softmax with AVX-512 (the AVX-512 and AVX-512 BF16 paths): per head the max
// (order-free: NaN scores are skipped as std::max skips them, and the sign of a zero max does
// not change any e^{s-m}), e = ExpF(s - m) 16 lanes at a time (kernels/ref/attention_exp_ref.h
// in double lanes, the same fused operations), p = bf16(e) in place, and the denominators'
// sums in ascending j as the scalar loop adds them, eight heads' chains side by side. Then the
// outputs bf16(acc / den), 16 columns at a time.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/attention_internal.h"
#include "kernels/cpu/simd.h"  // its pragmas cover every SIMD function defined below
#include "kernels/ref/attention_exp_ref.h"

namespace dsv4::kernels::internal {
namespace {

constexpr int kHeadBlock = 8;  // heads whose denominator chains run side by side

// ExpF of 8 floats (as doubles) on the main path.
DSV4_TARGET_AVX512 inline __m256 ExpMain8(__m256 x, const __m512d* table) {
  using namespace exp_constants;
  const __m512d xd = _mm512_cvtps_pd(x);
  const __m512d inv_ln2n = _mm512_set1_pd(std::bit_cast<double>(kInvLn2N));
  const __m512d shift = _mm512_set1_pd(std::bit_cast<double>(kShift));
  const __m512d z = _mm512_fmadd_pd(inv_ln2n, xd, shift);
  const __m512i ki = _mm512_castpd_si512(z);
  const __m512d kd = _mm512_sub_pd(z, shift);
  const __m512d r = _mm512_fmsub_pd(inv_ln2n, xd, kd);
  // table[ki & 31]: entries 0-15 from table[0..1], 16-31 from table[2..3] (index bit 4).
  const __m512i idx = _mm512_and_si512(ki, _mm512_set1_epi64(31));
  const __m512d t_lo = _mm512_permutex2var_pd(table[0], idx, table[1]);
  const __m512d t_hi = _mm512_permutex2var_pd(table[2], idx, table[3]);
  const __mmask8 upper = _mm512_test_epi64_mask(idx, _mm512_set1_epi64(16));
  const __m512i t = _mm512_add_epi64(_mm512_castpd_si512(_mm512_mask_blend_pd(upper, t_lo, t_hi)),
                                     _mm512_slli_epi64(ki, 47));
  const __m512d s = _mm512_castsi512_pd(t);
  const __m512d p = _mm512_fmadd_pd(r, _mm512_set1_pd(std::bit_cast<double>(kC0)),
                                    _mm512_set1_pd(std::bit_cast<double>(kC1)));
  const __m512d r2 = _mm512_mul_pd(r, r);
  __m512d y = _mm512_fmadd_pd(r, _mm512_set1_pd(std::bit_cast<double>(kC2)), _mm512_set1_pd(1.0));
  y = _mm512_fmadd_pd(p, r2, y);
  return _mm512_cvtpd_ps(_mm512_mul_pd(y, s));
}

struct ExpTable {
  __m512d t[4];
};
DSV4_TARGET_AVX512 inline ExpTable LoadExpTable() {
  ExpTable e;
  for (int i = 0; i < 4; ++i) {
    e.t[i] = _mm512_castsi512_pd(
        _mm512_loadu_si512(reinterpret_cast<const void*>(exp_constants::kTable + 8 * i)));
  }
  return e;
}

// ExpF of 16 floats; lanes off the main path (|x| >= 88, inf, NaN) go through the scalar one.
DSV4_TARGET_AVX512 inline __m512 Exp16(__m512 x, const ExpTable& table) {
  const __m512 lo = _mm512_castps256_ps512(ExpMain8(_mm512_castps512_ps256(x), table.t));
  __m512 y = _mm512_insertf32x8(lo, ExpMain8(_mm512_extractf32x8_ps(x, 1), table.t), 1);
  const __m512i top = _mm512_and_si512(_mm512_srli_epi32(_mm512_castps_si512(x), 20),
                                       _mm512_set1_epi32(0x7ff));
  const __mmask16 special =
      _mm512_cmpge_epu32_mask(top, _mm512_set1_epi32(static_cast<int>(exp_constants::kSpecialTop)));
  if (special != 0) {
    alignas(64) float xs[16], ys[16];
    _mm512_store_ps(xs, x);
    _mm512_store_ps(ys, y);
    for (int i = 0; i < 16; ++i) {
      if ((special >> i) & 1) ys[i] = ExpF(xs[i]);
    }
    y = _mm512_load_ps(ys);
  }
  return y;
}

}  // namespace

DSV4_TARGET_AVX512 void ExpFAvx512(const float* x, int64_t n, float* out) {
  const ExpTable table = LoadExpTable();
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = simd::FirstLanes16(n - j);
    _mm512_mask_storeu_ps(out + j, m, Exp16(_mm512_maskz_loadu_ps(m, x + j), table));
  }
}

DSV4_TARGET_AVX512 void AttnSoftmaxAvx512(const float* sink, int64_t heads, int64_t n, float* s,
                                          float* den, AttnThreadScratch* scratch) {
  const ExpTable table = LoadExpTable();
  std::vector<float>& e = scratch->exps;
  e.resize(static_cast<size_t>(kHeadBlock * n));
  for (int64_t hb = 0; hb < heads; hb += kHeadBlock) {
    const int64_t count = std::min<int64_t>(kHeadBlock, heads - hb);
    float mx[kHeadBlock];
    for (int64_t i = 0; i < count; ++i) {
      float* sh = s + (hb + i) * n;
      __m512 m = _mm512_set1_ps(-INFINITY);
      for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 tail = simd::FirstLanes16(n - j);
        // max(x, m) keeps m when x is NaN (std::max(m, x) does the same).
        m = _mm512_max_ps(_mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), tail, sh + j), m);
      }
      mx[i] = _mm512_reduce_max_ps(m);
      const __m512 mv = _mm512_set1_ps(mx[i]);
      float* ei = e.data() + i * n;
      for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 tail = simd::FirstLanes16(n - j);
        const __m512 ev = Exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, sh + j), mv), table);
        _mm512_mask_storeu_ps(ei + j, tail, ev);
        _mm512_mask_storeu_ps(sh + j, tail, simd::RoundBf16x16(ev));
      }
    }
    // Σ_j e in ascending j per head: independent chains, one per head of the block.
    float sum[kHeadBlock] = {};
    if (count == kHeadBlock) {
      for (int64_t j = 0; j < n; ++j) {
#pragma GCC unroll 8
        for (int i = 0; i < kHeadBlock; ++i) sum[i] += e[i * n + j];
      }
    } else {
      for (int64_t i = 0; i < count; ++i) {
        for (int64_t j = 0; j < n; ++j) sum[i] += e[i * n + j];
      }
    }
    for (int64_t i = 0; i < count; ++i) den[hb + i] = sum[i] + ExpF(sink[hb + i] - mx[i]);
  }
}

DSV4_TARGET_AVX512 void AttnNormalizeAvx512(const float* acc, const float* den, int64_t heads,
                                            int64_t d, BF16* out) {
  for (int64_t h = 0; h < heads; ++h) {
    const __m512 dv = _mm512_set1_ps(den[h]);
    for (int64_t k = 0; k < d; k += 16) {
      const __mmask16 tail = simd::FirstLanes16(d - k);
      const __m512 r = simd::RoundBf16x16(_mm512_div_ps(_mm512_maskz_loadu_ps(tail, acc + h * d + k), dv));
      _mm256_mask_storeu_epi16(out + h * d + k, tail,
                               _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_castps_si512(r), 16)));
    }
  }
}

}  // namespace dsv4::kernels::internal
