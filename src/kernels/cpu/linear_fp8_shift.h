// The shifted E4M3 decode shared by the FP8 paths through VDPBF16PS: the small-row paths
// (linear_fp8_shift_avx512bf16.cpp, which defines MakeShiftConsts) and the GEMM's panel
// (linear_gemm_avx512bf16.cpp).
//
// A normal E4M3 code s.eeee.mmm read as the BF16 word s.0000eeee.mmm0000 (the code in a
// word's high byte, an arithmetic shift right by 4, an and) is its value times 2^-120. With
// the inputs carried x 2^kShiftX, every input value (2^-9 .. 448 times 2^kShiftX), product
// (at least 2^-18 times 2^(kShiftX-120)) and partial sum is the canonical one times an exact
// power of two, far from FP32's subnormals and overflow, so VDPBF16PS rounds each lane as the
// canonical order does and one exact multiply by kShiftFactor restores a canonical partial.
// Zero codes give +-0 as they should. Subnormal codes (magnitudes 1-7) and the NaN code have
// no such word (a BF16 subnormal, which VDPBF16PS reads as zero): OddCodes flags them, and
// their part is decoded again through the exact tables (ExactWords, true values).
#pragma once

#include <cstdint>

#include "kernels/cpu/simd.h"

namespace dsv4::kernels::internal {

inline constexpr int kShiftX = 64;
inline constexpr float kShiftFactor = 0x1p56f;  // 2^(120 - kShiftX)

struct ShiftConsts {
  __m512i spread[4];   // vpermt2b: register j of 64 columns, row a's codes in bytes 0-63 and
                       // row b's in 64-127; both bytes of each word get the code
  __m512i spread16;    // vpshufb: 16 codes of row a in 128-bit lanes 0-1 and 16 of row b in
                       // 2-3 -> both bytes of each word its code, pair layout
  __m512i odd_lo, odd_hi;  // 0xFF at the magnitudes without a shifted word (1-7, 127)
  __m512i odd0_lo;         // odd_lo with magnitude 0 too (kFp8AsBf16)
  __m512i word_mask;   // 0x87F0: sign and the shifted magnitude
  simd::E4M3PairConsts exact;
};

// Computed once (a few hundred scalar steps: measurable next to a small GEMV).
const ShiftConsts& MakeShiftConsts();

// Spread codes (each word's both bytes its code, or its high byte) -> shifted words.
DSV4_TARGET_AVX512BF16 inline __m512i ShiftedWords(const ShiftConsts& c, __m512i codes) {
  return _mm512_and_si512(_mm512_srai_epi16(codes, 4), c.word_mask);
}

// 16 codes at a (row a) and 16 at b (row b) -> shifted words in pair layout: two broadcast
// loads and one in-lane vpshufb (no cross-lane shuffle).
DSV4_TARGET_AVX512BF16 inline __m512i ShiftedPairWords(const ShiftConsts& c, const uint8_t* a,
                                                       const uint8_t* b) {
  __m512i q = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a)));
  q = _mm512_mask_broadcast_i32x4(q, 0xFF00, _mm_loadu_si128(reinterpret_cast<const __m128i*>(b)));
  return ShiftedWords(c, _mm512_shuffle_epi8(q, c.spread16));
}

// 16 FP32 input values (E4M3 code values) -> their pair layout (simd::PairsFromF32) x
// 2^kShiftX, exact.
DSV4_TARGET_AVX512BF16 inline __m256i ShiftedPairs16(const float* v) {
  static_assert(kShiftX == 64);
  const __m256 shift = _mm256_set1_ps(0x1p64f);
  const __m256i high = _mm256_set1_epi32(static_cast<int32_t>(0xFFFF0000u));
  const __m256i v0 = _mm256_castps_si256(_mm256_mul_ps(_mm256_loadu_ps(v), shift));
  const __m256i v1 = _mm256_castps_si256(_mm256_mul_ps(_mm256_loadu_ps(v + 8), shift));
  return _mm256_or_si256(_mm256_srli_epi32(v1, 16), _mm256_and_si256(v0, high));
}

// E4M3WordsBf16 of codes already spread (each word's both bytes its code).
DSV4_TARGET_AVX512BF16 inline __m512i ExactWords(const ShiftConsts& c, __m512i codes) {
  const __m512i lo = _mm512_permutex2var_epi8(c.exact.lo_a, codes, c.exact.lo_b);
  const __m512i hi = _mm512_permutex2var_epi8(c.exact.hi_a, codes, c.exact.hi_b);
  return _mm512_ternarylogic_epi32(_mm512_mask_blend_epi8(0xAAAAAAAAAAAAAAAAull, lo, hi), codes,
                                   c.exact.sign, 0xF8);
}

// Nonzero bytes where the 128 codes of a pair register's rows at a and b (one block) have
// no shifted word: odd_lo is c.odd_lo or c.odd0_lo.
DSV4_TARGET_AVX512BF16 inline __m512i OddCodes(const ShiftConsts& c, __m512i odd_lo,
                                               const uint8_t* a, const uint8_t* b) {
  auto look = [&](const uint8_t* p) {
    return _mm512_permutex2var_epi8(odd_lo, _mm512_loadu_si512(p), c.odd_hi);
  };
  return _mm512_or_si512(_mm512_or_si512(look(a), look(a + 64)),
                         _mm512_or_si512(look(b), look(b + 64)));
}

}  // namespace dsv4::kernels::internal
