// SIMD building blocks shared by the AVX2 and AVX-512 kernels. Included only by the
// *_avx2.cpp / *_avx512.cpp files; every function carries a target attribute, so the rest of
// the binary stays baseline x86-64 and runs on any CPU (kernels/cpu/isa.h picks the path).
//
// Exactness rules every kernel here follows (they are what makes all ISAs bit-identical to
// the scalar path and to the model's reference forward):
//  * A dot product is the canonical 8-lane order: element k goes to lane k mod 8, each lane
//    adds its rounded products in ascending k starting from +0, and the lanes combine as
//    ((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7)). One __m256 accumulator is exactly that; a __m512
//    holds two independent 8-lane accumulators (two outputs), never one 16-lane one.
//  * Products and sums are separate instructions (mul then add), except where every product
//    is exact in FP32 (quantised operands: E4M3 x E4M3, E2M1 x E4M3, BF16 x E2M1-scaled...,
//    and no product or partial sum in the subnormal range): there an FMA, or VDPBF16PS's two
//    sequential FMAs, round exactly as the multiply-then-add does, and the kernels use them
//    for speed (each call site states why its products are exact, and checks the range where
//    inputs could break it).
//  * GCC contracts a*b+c into an FMA whenever the target has FMA (AVX-512 implies it) and
//    -ffp-contract=fast is its C++ default, which would change the rounding of the inexact
//    products; the pragma below turns that off for every function defined after it
//    (including the helpers in this header).
#pragma once

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
// GCC 12 warns about the deliberately undefined upper lanes inside its own AVX-512
// intrinsics (_mm512_cvtph_ps, _mm512_permutexvar_ps, _mm512_reduce_add_ps, ...; GCC bug
// 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <immintrin.h>

#include <cstdint>

#define DSV4_TARGET_AVX2 __attribute__((target("avx2,f16c,fma")))
#define DSV4_TARGET_AVX512 \
  __attribute__((target("avx2,f16c,fma,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))
#define DSV4_TARGET_AVX512BF16                                              \
  __attribute__((                                                           \
      target("avx2,f16c,fma,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni," \
             "avx512bf16,avx512vbmi")))

namespace dsv4::kernels::simd {

// FP16 bit patterns' high byte of the 16 E2M1 values (the low byte is always 0): 0, 0.5, 1,
// 1.5, 2, 3, 4, 6, then the same with the sign bit.
inline constexpr uint8_t kE2M1Fp16High[16] = {0x00, 0x38, 0x3C, 0x3E, 0x40, 0x42, 0x44, 0x46,
                                              0x80, 0xB8, 0xBC, 0xBE, 0xC0, 0xC2, 0xC4, 0xC6};

// An E4M3 code c becomes the FP16 pattern (sign << 15) | ((c & 0x7F) << 7): FP16 has E4M3's
// three mantissa bits and a wider exponent with bias 15 instead of 7, so the FP16 value is
// exactly 2^-8 times the E4M3 value, subnormals included (both grids end at 2^-9 / 2^-17).
// The FP32 conversion is exact, and products with it are exactly 2^-8 times the true ones, so
// the 8-lane sums are too (no product comes near the FP32 subnormal range); callers multiply
// the reduced sum by 256. Code 0x7F (NaN) decodes to 480 * 2^-8: weights never hold it.
inline constexpr float kE4M3Fp16Unscale = 256.0f;

// ---------------------------------------------------------------------------------------
// AVX2 (8 FP32 lanes)

// 8 E4M3 codes -> FP32 values × 2^-8.
DSV4_TARGET_AVX2 inline __m256 E4M3x8(const uint8_t* p) {
  const __m128i c = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
  // Sign-extend so bits 15 and 14 both hold the sign after << 7, then clear bit 14.
  const __m128i h = _mm_and_si128(_mm_slli_epi16(_mm_cvtepi8_epi16(c), 7),
                                  _mm_set1_epi16(static_cast<int16_t>(0xBFFF)));
  return _mm256_cvtph_ps(h);
}

// 16 packed E2M1 bytes (32 values, low nibble first) -> 4 x 8 FP32 values, in order.
DSV4_TARGET_AVX2 inline void E2M1x32(const uint8_t* p, __m256* out) {
  const __m128i lut = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kE2M1Fp16High));
  const __m128i mask = _mm_set1_epi8(0x0F);
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i lo = _mm_and_si128(b, mask);
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), mask);
  const __m128i h0 = _mm_shuffle_epi8(lut, _mm_unpacklo_epi8(lo, hi));  // values 0..15
  const __m128i h1 = _mm_shuffle_epi8(lut, _mm_unpackhi_epi8(lo, hi));  // values 16..31
  const __m128i z = _mm_setzero_si128();
  out[0] = _mm256_cvtph_ps(_mm_unpacklo_epi8(z, h0));
  out[1] = _mm256_cvtph_ps(_mm_unpackhi_epi8(z, h0));
  out[2] = _mm256_cvtph_ps(_mm_unpacklo_epi8(z, h1));
  out[3] = _mm256_cvtph_ps(_mm_unpackhi_epi8(z, h1));
}

// 8 BF16 values -> FP32 (exact).
DSV4_TARGET_AVX2 inline __m256 Bf16x8(const void* p) {
  const __m128i v = _mm_loadu_si128(static_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v), 16));
}

// The canonical lane combine of 8 accumulators at once: result[i] =
// ((a_i0+a_i1)+(a_i2+a_i3))+((a_i4+a_i5)+(a_i6+a_i7)). hadd adds adjacent pairs; FP32
// addition is commutative bit for bit, so only the pairing matters.
DSV4_TARGET_AVX2 inline __m256 ReduceLanes8(const __m256* a) {
  const __m256 h01 = _mm256_hadd_ps(a[0], a[1]), h23 = _mm256_hadd_ps(a[2], a[3]);
  const __m256 h45 = _mm256_hadd_ps(a[4], a[5]), h67 = _mm256_hadd_ps(a[6], a[7]);
  // Per 128-bit half: [a0, a1, a2, a3] partial sums of lanes 0-3 (low) and 4-7 (high).
  const __m256 q0 = _mm256_hadd_ps(h01, h23), q1 = _mm256_hadd_ps(h45, h67);
  const __m256 low = _mm256_permute2f128_ps(q0, q1, 0x20);   // (l0+l1)+(l2+l3) of a0..a7
  const __m256 high = _mm256_permute2f128_ps(q0, q1, 0x31);  // (l4+l5)+(l6+l7) of a0..a7
  return _mm256_add_ps(low, high);
}

// One canonical dot product (n % 8 == 0).
DSV4_TARGET_AVX2 inline float Dot8Avx2(const float* a, const float* b, int64_t n) {
  __m256 acc = _mm256_setzero_ps();
  for (int64_t k = 0; k < n; k += 8) {
    acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k)));
  }
  const __m128 lo = _mm256_castps256_ps128(acc), hi = _mm256_extractf128_ps(acc, 1);
  const __m128 l = _mm_hadd_ps(lo, hi);  // l0+l1, l2+l3, l4+l5, l6+l7
  const __m128 q = _mm_hadd_ps(l, l);    // (l0+l1)+(l2+l3), (l4+l5)+(l6+l7), ...
  return _mm_cvtss_f32(q) + _mm_cvtss_f32(_mm_shuffle_ps(q, q, 1));
}

// E8M0 codes (one per 32-bit lane, 0..255) -> 2^(e-127) as FP32, NaN for 255, like E8M0ToF32.
DSV4_TARGET_AVX2 inline __m256 E8M0x8(__m256i e) {
  __m256i bits = _mm256_slli_epi32(e, 23);
  bits = _mm256_blendv_epi8(bits, _mm256_set1_epi32(0x00400000),
                            _mm256_cmpeq_epi32(e, _mm256_setzero_si256()));
  bits = _mm256_blendv_epi8(bits, _mm256_set1_epi32(0x7FC00000),
                            _mm256_cmpeq_epi32(e, _mm256_set1_epi32(255)));
  return _mm256_castsi256_ps(bits);
}

// RoundBf16 of 8 floats (round to nearest even; NaN stays a quiet NaN with its sign and top
// payload bits), as FP32 values.
DSV4_TARGET_AVX2 inline __m256 RoundBf16x8(__m256 v) {
  const __m256i u = _mm256_castps_si256(v);
  const __m256i high = _mm256_set1_epi32(static_cast<int32_t>(0xFFFF0000u));
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  const __m256i rounded =
      _mm256_and_si256(_mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7FFF), lsb)), high);
  const __m256i nan = _mm256_or_si256(_mm256_and_si256(u, high), _mm256_set1_epi32(0x00400000));
  return _mm256_blendv_ps(_mm256_castsi256_ps(rounded), _mm256_castsi256_ps(nan),
                          _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
}

// std::max(x, 0.0f) per lane: maxps returns its second operand unless the first is greater,
// so NaN and -0 pass through as std::max lets them.
DSV4_TARGET_AVX2 inline __m256 Relu8(__m256 x) { return _mm256_max_ps(_mm256_setzero_ps(), x); }

// ---------------------------------------------------------------------------------------
// AVX-512: a __m512 is two 8-lane accumulators ("halves"), each its own canonical sum.

// 16 E4M3 codes (bytes of c) -> FP32 values × 2^-8, as E4M3x8.
DSV4_TARGET_AVX512 inline __m512 E4M3x16(__m128i c) {
  const __m256i h = _mm256_and_si256(_mm256_slli_epi16(_mm256_cvtepi8_epi16(c), 7),
                                     _mm256_set1_epi16(static_cast<int16_t>(0xBFFF)));
  return _mm512_cvtph_ps(h);
}

// 8 E4M3 codes at p (low half) and 8 at q (high half) -> FP32 values × 2^-8.
DSV4_TARGET_AVX512 inline __m512 E4M3x8x2(const uint8_t* p, const uint8_t* q) {
  __m128i c = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
  c = _mm_castpd_si128(_mm_loadh_pd(_mm_castsi128_pd(c), reinterpret_cast<const double*>(q)));
  return E4M3x16(c);
}

// 16 packed E2M1 bytes at p and 16 at q (32 values each) -> out[s] = [p step s | q step s]
// for the four 8-value steps s.
DSV4_TARGET_AVX512 inline void E2M1x32x2(const uint8_t* p, const uint8_t* q, __m512* out) {
  const __m256i lut =
      _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kE2M1Fp16High)));
  const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
  const __m256i mask = _mm256_set1_epi16(0x0F0F);
  for (int part = 0; part < 2; ++part) {
    // [p values 16*part .. +16 | q values 16*part .. +16] as 16 bytes.
    const __m128i pq = part == 0 ? _mm_unpacklo_epi64(a, b) : _mm_unpackhi_epi64(a, b);
    const __m256i w = _mm256_cvtepu8_epi16(pq);
    // Word m = byte m: low nibble to the low byte, high nibble to the high byte, so the 32
    // bytes are the 32 codes in order.
    const __m256i codes = _mm256_and_si256(_mm256_or_si256(w, _mm256_slli_epi16(w, 4)), mask);
    const __m256i h = _mm256_shuffle_epi8(lut, codes);  // in-lane: lane 0 = p, lane 1 = q
    const __m256i z = _mm256_setzero_si256();
    // unpacklo: [p step 2*part | q step 2*part], unpackhi: the next step, as FP16 words.
    out[2 * part] = _mm512_cvtph_ps(_mm256_unpacklo_epi8(z, h));
    out[2 * part + 1] = _mm512_cvtph_ps(_mm256_unpackhi_epi8(z, h));
  }
}

// 8 BF16 values at p (low half) and 8 at q (high half) -> FP32.
// 16 BF16 values -> FP32 (exact).
DSV4_TARGET_AVX512 inline __m512 Bf16x16(const void* p) {
  const __m256i v = _mm256_loadu_si256(static_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
}

DSV4_TARGET_AVX512 inline __m512 Bf16x8x2(const void* p, const void* q) {
  const __m256i v = _mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_loadu_si128(static_cast<const __m128i*>(p))),
      _mm_loadu_si128(static_cast<const __m128i*>(q)), 1);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
}

// 8 floats at p and 8 at q as one register.
DSV4_TARGET_AVX512 inline __m512 F32x8x2(const float* p, const float* q) {
  return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(p)), _mm256_loadu_ps(q), 1);
}

// hadd of two registers within each 128-bit lane, as _mm256_hadd_ps does.
DSV4_TARGET_AVX512 inline __m512 Hadd512(__m512 a, __m512 b) {
  return _mm512_add_ps(_mm512_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
}

// The canonical combine of 16 accumulators held as 8 registers, a[i] = [acc i | acc i+8]:
// result lane j is the sum of accumulator j, for j = 0..15 in order.
DSV4_TARGET_AVX512 inline __m512 ReduceLanes16(const __m512* a) {
  const __m512 q0 = Hadd512(Hadd512(a[0], a[1]), Hadd512(a[2], a[3]));
  const __m512 q1 = Hadd512(Hadd512(a[4], a[5]), Hadd512(a[6], a[7]));
  // 128-bit lane L of q0: accumulators 0-3 (L = 0, 2: lanes 0-3 sums of the low / high half;
  // L = 1, 3: lanes 4-7 sums); q1 the same for accumulators 4-7.
  const __m512 low = _mm512_shuffle_f32x4(q0, q1, _MM_SHUFFLE(2, 0, 2, 0));
  const __m512 high = _mm512_shuffle_f32x4(q0, q1, _MM_SHUFFLE(3, 1, 3, 1));
  // Sums for accumulators [0-3, 8-11, 4-7, 12-15]; put them in order.
  const __m512i order = _mm512_setr_epi32(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15);
  return _mm512_permutexvar_ps(order, _mm512_add_ps(low, high));
}

// Index for _mm512_permutexvar_ps that spreads tile scales s[0..15] over pair register p's
// lanes: s[p] on lanes 0-7 (row p), s[p + 8] on lanes 8-15 (row p + 8).
DSV4_TARGET_AVX512 inline __m512i PairScaleIndex(int p) {
  return _mm512_mask_set1_epi32(_mm512_set1_epi32(p), 0xFF00, p + 8);
}

// RoundBf16x8 for 16 floats.
DSV4_TARGET_AVX512 inline __m512 RoundBf16x16(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i high = _mm512_set1_epi32(static_cast<int32_t>(0xFFFF0000u));
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  const __m512i rounded =
      _mm512_and_si512(_mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7FFF), lsb)), high);
  const __m512i nan = _mm512_or_si512(_mm512_and_si512(u, high), _mm512_set1_epi32(0x00400000));
  return _mm512_castsi512_ps(
      _mm512_mask_mov_epi32(rounded, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), nan));
}

// Relu8 for 16 floats.
DSV4_TARGET_AVX512 inline __m512 Relu16(__m512 x) { return _mm512_max_ps(_mm512_setzero_ps(), x); }

// The mask of the first min(n, 16) lanes (n >= 0): a tail's loads and stores.
inline __mmask16 FirstLanes16(int64_t n) {
  return n >= 16 ? __mmask16{0xFFFF} : static_cast<__mmask16>((1u << n) - 1);
}

// E8M0 codes (one per 32-bit lane) -> FP32, like E8M0ToF32.
DSV4_TARGET_AVX512 inline __m512 E8M0x16(__m512i e) {
  __m512i bits = _mm512_slli_epi32(e, 23);
  bits = _mm512_mask_mov_epi32(bits, _mm512_cmpeq_epi32_mask(e, _mm512_setzero_si512()),
                               _mm512_set1_epi32(0x00400000));
  bits = _mm512_mask_mov_epi32(bits, _mm512_cmpeq_epi32_mask(e, _mm512_set1_epi32(255)),
                               _mm512_set1_epi32(0x7FC00000));
  return _mm512_castsi512_ps(bits);
}

// ---------------------------------------------------------------------------------------
// AVX-512 BF16 dot products. VDPBF16PS adds to FP32 lane j the products of BF16 word pair j:
// first the odd (high) word's product, then the even (low) word's, each rounded (RNE; inputs
// and outputs that are FP32 subnormals are flushed, so callers guarantee none occur). For a
// canonical 8-lane accumulator over values k0 .. k0+15, dword lane j therefore holds
// [low word: value k0+8+j | high word: value k0+j]: "pair layout". With exact products this
// is bit for bit the canonical multiply-then-add order, at 32 multiply-adds per instruction.

// FP32 values -> BF16 pair layout of 16 values (each exactly representable in BF16), as 8
// dwords: out[j] = bf16(v[8 + j]) | bf16(v[j]) << 16.
inline void PairsFromF32(const float* v, uint32_t* out) {
  for (int j = 0; j < 8; ++j) {
    uint32_t lo, hi;
    __builtin_memcpy(&lo, v + 8 + j, 4);
    __builtin_memcpy(&hi, v + j, 4);
    out[j] = (lo >> 16) | (hi & 0xFFFF0000u);
  }
}

// BF16 bytes of the E2M1 values (low byte for codes 0..15, then high byte), for vpermb.
inline constexpr uint8_t kE2M1Bf16Bytes[64] = {
    0x00, 0x00, 0x80, 0xC0, 0x00, 0x40, 0x80, 0xC0, 0x00, 0x00, 0x80, 0xC0, 0x00, 0x40, 0x80, 0xC0,
    0x00, 0x3F, 0x3F, 0x3F, 0x40, 0x40, 0x40, 0x40, 0x80, 0xBF, 0xBF, 0xBF, 0xC0, 0xC0, 0xC0, 0xC0,
    0x00, 0x00, 0x80, 0xC0, 0x00, 0x40, 0x80, 0xC0, 0x00, 0x00, 0x80, 0xC0, 0x00, 0x40, 0x80, 0xC0,
    0x00, 0x3F, 0x3F, 0x3F, 0x40, 0x40, 0x40, 0x40, 0x80, 0xBF, 0xBF, 0xBF, 0xC0, 0xC0, 0xC0, 0xC0};

// Constants of E2M1PairsBf16.
struct E2M1PairConsts {
  __m512i shifts;  // vpmultishiftqb bit offset of each output byte's nibble
  __m512i high;    // 0x10 on the high byte of each word (the table's second half)
  __m512i table;   // kE2M1Bf16Bytes
};

DSV4_TARGET_AVX512BF16 inline E2M1PairConsts MakeE2M1PairConsts() {
  E2M1PairConsts c;
  alignas(64) uint8_t shifts[64], high[64];
  for (int t = 0; t < 64; ++t) {
    const int tt = t % 32, j = tt / 4, word = (tt % 4) / 2;
    const int value = word == 0 ? 8 + j : j;      // pair layout
    shifts[t] = static_cast<uint8_t>(4 * value);  // value v's nibble: bits 4v .. 4v+3
    high[t] = static_cast<uint8_t>(tt % 2 == 1 ? 0x10 : 0x00);
  }
  c.shifts = _mm512_load_si512(shifts);
  c.high = _mm512_load_si512(high);
  c.table = _mm512_loadu_si512(kE2M1Bf16Bytes);
  return c;
}

// 8 packed E2M1 bytes at a (values k0 .. k0+15 of one row) and 8 at b (another row) -> 32
// BF16 words in pair layout: dword lanes 0-7 from a, 8-15 from b.
DSV4_TARGET_AVX512BF16 inline __m512i E2M1PairsBf16(const uint8_t* a, const uint8_t* b,
                                                    const E2M1PairConsts& c) {
  // Every qword of a half holds that row's 8 bytes (two broadcast loads); each output byte
  // then picks its nibble.
  int64_t qa, qb;
  __builtin_memcpy(&qa, a, 8);
  __builtin_memcpy(&qb, b, 8);
  const __m512i rows = _mm512_mask_set1_epi64(_mm512_set1_epi64(qa), 0xF0, qb);
  const __m512i nibbles = _mm512_multishift_epi64_epi8(c.shifts, rows);
  // Index = nibble (low 4 bits; the shifted-in neighbour dropped) + 16 on high bytes.
  const __m512i index = _mm512_ternarylogic_epi32(nibbles, _mm512_set1_epi8(0x0F), c.high, 0xEA);
  return _mm512_permutexvar_epi8(index, c.table);
}

// BF16 words of the 128 E4M3 magnitudes (code & 0x7F), exact (E4M3 values have at most 4
// significant bits and exponents 2^-9 .. 2^8); 0x7F, E4M3's NaN, gives a BF16 NaN.
constexpr uint16_t E4M3MagnitudeBf16(int m) {
  const int e = m >> 3, f = m & 7;
  if (m == 0x7F) return 0x7FC0;
  if (e > 0) return static_cast<uint16_t>(((e + 120) << 7) | (f << 4));
  if (f == 0) return 0;
  int exponent = -9, mant = f;  // f * 2^-9, normalised to 1.xxx * 2^exponent
  while (mant < 8) {
    mant <<= 1;
    --exponent;
  }
  return static_cast<uint16_t>(((exponent + 3 + 127) << 7) | ((mant & 7) << 4));
}

// Tables and index vectors of E4M3PairsBf16.
struct E4M3PairConsts {
  __m512i spread;      // output byte -> source byte (the value's code, pair layout)
  __m512i lo_a, lo_b;  // low BF16 bytes of magnitudes 0-63 and 64-127
  __m512i hi_a, hi_b;  // high bytes
  __m512i sign;        // 0x80 on high bytes: the code's sign bit is the BF16 sign bit
};

DSV4_TARGET_AVX512BF16 inline E4M3PairConsts MakeE4M3PairConsts() {
  E4M3PairConsts c;
  alignas(64) uint8_t spread[64], sign[64], lo[128], hi[128];
  for (int t = 0; t < 64; ++t) {
    const int half = t / 32, tt = t % 32, j = tt / 4, word = (tt % 4) / 2;
    spread[t] = static_cast<uint8_t>(16 * half + (word == 0 ? 8 + j : j));
    sign[t] = static_cast<uint8_t>(tt % 2 == 1 ? 0x80 : 0x00);
  }
  for (int m = 0; m < 128; ++m) {
    lo[m] = static_cast<uint8_t>(E4M3MagnitudeBf16(m) & 0xFF);
    hi[m] = static_cast<uint8_t>(E4M3MagnitudeBf16(m) >> 8);
  }
  c.spread = _mm512_load_si512(spread);
  c.sign = _mm512_load_si512(sign);
  c.lo_a = _mm512_load_si512(lo);
  c.lo_b = _mm512_load_si512(lo + 64);
  c.hi_a = _mm512_load_si512(hi);
  c.hi_b = _mm512_load_si512(hi + 64);
  return c;
}

// 32 E4M3 codes -> 32 BF16 words, exact: output word w takes the code of byte spread[2w]
// (spread: a vpermb index vector that repeats each source byte for both bytes of its word).
DSV4_TARGET_AVX512BF16 inline __m512i E4M3WordsBf16(__m256i codes32, __m512i spread,
                                                    const E4M3PairConsts& c) {
  // Each output byte gets its value's code (both bytes of a word the same code).
  const __m512i codes = _mm512_permutexvar_epi8(spread, _mm512_castsi256_si512(codes32));
  // 128-entry lookups on the low 7 bits (vpermi2b ignores bit 7, the sign).
  const __m512i lo = _mm512_permutex2var_epi8(c.lo_a, codes, c.lo_b);
  const __m512i hi = _mm512_permutex2var_epi8(c.hi_a, codes, c.hi_b);
  const __m512i v = _mm512_mask_blend_epi8(0xAAAAAAAAAAAAAAAAull, lo, hi);
  return _mm512_ternarylogic_epi32(v, codes, c.sign, 0xF8);  // v | (codes & sign)
}

// 16 E4M3 codes at a (values k0 .. k0+15 of one row) and 16 at b (another row) -> 32 BF16
// words in pair layout (lanes 0-7 from a, 8-15 from b), exact.
DSV4_TARGET_AVX512BF16 inline __m512i E4M3PairsBf16(const uint8_t* a, const uint8_t* b,
                                                    const E4M3PairConsts& c) {
  const __m256i q = _mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a))),
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(b)), 1);
  return E4M3WordsBf16(q, c.spread, c);
}

// vpermb / vpermw index vectors for 32 consecutive values of one row. Pairs2: two groups of
// 16 in pair layout (dword lanes 0-7: values 0-15, lanes 8-15: values 16-31). Natural: in
// order. Byte indices for E4M3WordsBf16, word indices for permuting BF16 words.
struct RowSpreads {
  __m512i pairs2_bytes, natural_bytes, pairs2_words;
};

DSV4_TARGET_AVX512BF16 inline RowSpreads MakeRowSpreads() {
  alignas(64) uint8_t pairs2[64], natural[64];
  alignas(64) uint16_t words[32];
  for (int t = 0; t < 64; ++t) {
    const int group = t / 32, tt = t % 32, j = tt / 4, word = (tt % 4) / 2;
    pairs2[t] = static_cast<uint8_t>(16 * group + (word == 0 ? 8 + j : j));
    natural[t] = static_cast<uint8_t>(t / 2);
  }
  for (int w = 0; w < 32; ++w) words[w] = pairs2[2 * w];
  RowSpreads r;
  r.pairs2_bytes = _mm512_load_si512(pairs2);
  r.natural_bytes = _mm512_load_si512(natural);
  r.pairs2_words = _mm512_load_si512(words);
  return r;
}

// Adds delta (a multiple of 128: an exponent change) to the nonzero BF16 words of v; the
// caller guarantees the exponents stay in range.
DSV4_TARGET_AVX512BF16 inline __m512i ScaleBf16Words(__m512i v, __m512i delta) {
  return _mm512_mask_add_epi16(v, _mm512_test_epi16_mask(v, _mm512_set1_epi16(0x7FFF)), v, delta);
}

DSV4_TARGET_AVX512BF16 inline __m512 DotBf16(__m512 acc, __m512i a, __m512i b) {
  return _mm512_dpbf16_ps(acc, reinterpret_cast<__m512bh>(a), reinterpret_cast<__m512bh>(b));
}

}  // namespace dsv4::kernels::simd
