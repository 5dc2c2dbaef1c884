// AVX-512 tile loops of the linears: linear_tiles.inc over simd::Avx512 (16 output rows per
// tile as 8 registers, register p holding the 8-lane accumulators of outputs p (low half) and
// p + 8 (high half)); and the AVX-512 input quantiser of the FP8 / FP4 linears.
#include "core/fp8.h"
#include "core/quant.h"

#define DSV4_VEC_TARGET DSV4_TARGET_AVX512
#include "kernels/cpu/linear_tiles.inc"  // (last: simd.h's pragmas cover what follows)

namespace dsv4::kernels::internal {
namespace {

// E4M3ToF32(F32ToE4M3(t)) for |t| <= 448 or NaN: below 2^-6 onto the subnormal grid by
// adding 2^14 (its ulp is 2^-9: the FPU rounds to nearest even), above it by rounding the 20
// dropped mantissa bits to nearest even in the integer domain (a carry moves to the next
// binade; |t| <= 448 never reaches 480). NaN becomes ±0x7FC00000 like E4M3ToF32.
DSV4_TARGET_AVX512 inline __m512 RoundToE4M3Grid(__m512 t) {
  const __m512i bits = _mm512_castps_si512(t);
  const __m512i sign = _mm512_and_si512(bits, _mm512_set1_epi32(static_cast<int>(0x80000000u)));
  const __m512i mag = _mm512_xor_si512(bits, sign);
  const __m512 magf = _mm512_castsi512_ps(mag);
  const __m512 magic = _mm512_set1_ps(16384.0f);
  const __m512 sub = _mm512_sub_ps(_mm512_add_ps(magf, magic), magic);
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(mag, 20), _mm512_set1_epi32(1));
  const __m512i normal = _mm512_and_si512(
      _mm512_add_epi32(mag, _mm512_add_epi32(_mm512_set1_epi32(0x7FFFF), odd)),
      _mm512_set1_epi32(static_cast<int>(0xFFF00000u)));
  const __mmask16 is_sub = _mm512_cmplt_epi32_mask(mag, _mm512_set1_epi32(121 << 23));
  __m512i r = _mm512_mask_mov_epi32(normal, is_sub, _mm512_castps_si512(sub));
  r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(t, t, _CMP_UNORD_Q),
                            _mm512_set1_epi32(0x7FC00000));  // E4M3ToF32 of the NaN code
  return _mm512_castsi512_ps(_mm512_or_si512(r, sign));
}

}  // namespace

DSV4_TARGET_AVX512 void ActQuantValuesAvx512(const BF16* x, int64_t in, float* values,
                                             float* scales) {
  for (int64_t b = 0; b < in / 128; ++b) {
    __m512 v[8];
    __m512 amax = _mm512_setzero_ps();
    for (int j = 0; j < 8; ++j) {
      v[j] = simd::Bf16x16(x + b * 128 + 16 * j);
      amax = _mm512_max_ps(_mm512_abs_ps(v[j]), amax);  // a NaN |v| leaves amax as it was
    }
    const float s = Ue8m0Scale(std::max(_mm512_reduce_max_ps(amax), kFp8AmaxFloor), kE4M3Max);
    scales[b] = s;
    // x / s as x * (1 / s): s is a power of two in [2^-126, 2^127] or inf, so 1 / s is
    // exact (2^-127 a subnormal, 1 / inf = 0) and both give the correctly rounded x * 2^-k,
    // the same NaN for inf inputs (inf / inf and inf * 0 both invalid), at a fraction of a
    // division's cost (it was a tenth of a prefill GEMM's time).
    const __m512 inv = _mm512_set1_ps(1.0f / s), lo = _mm512_set1_ps(-kE4M3Max),
                 hi = _mm512_set1_ps(kE4M3Max);
    for (int j = 0; j < 8; ++j) {
      // std::clamp order: NaN passes (max/min return their second operand on NaN).
      const __m512 t = _mm512_min_ps(hi, _mm512_max_ps(lo, _mm512_mul_ps(v[j], inv)));
      _mm512_storeu_ps(values + b * 128 + 16 * j, RoundToE4M3Grid(t));
    }
  }
}

DSV4_TARGET_AVX512 void LinearTilesAvx512(const LinearCall& c, int64_t n0, int64_t n1) {
  if (c.rows >= kGemmMinRows && LinearGemmAvx512(c, n0, n1)) return;
  LinearTiles<simd::Avx512>(c, n0, n1);
}

DSV4_TARGET_AVX512 void LinearFp32TilesAvx512(const LinearCall& c, int64_t n0, int64_t n1) {
  LinearTiles<simd::Avx512>(c, n0, n1);
}

}  // namespace dsv4::kernels::internal
