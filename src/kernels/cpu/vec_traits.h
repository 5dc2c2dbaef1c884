// Vector traits over which the per-ISA tile loops are written once (the tinyBLAS pattern of
// llama.cpp's llamafile/sgemm.cpp): a tile loop is a template over V, and each *_avx2.cpp /
// *_avx512.cpp file instantiates it for its ISA (see "Instantiating" below).
//
// The model both ISAs share: a tile holds 8 registers; register p carries V::kHalves
// independent canonical 8-lane accumulators (kernels/cpu/simd.h): AVX2 one (row p), AVX-512
// two (rows p and p + 8 in its low and high halves). So a tile covers V::kTile = 8 * kHalves
// rows, every row keeps the canonical lane order, and V::Reduce of the 8 registers gives the
// kTile row sums in row order. "Rows of register p" below means those 1 or 2 rows.
//
// Instantiating. The templates carry a target attribute, and it must be the instantiating
// ISA's: an AVX-512 instruction must never reach a function an AVX2-only CPU runs. So the
// templates live in *_tiles.inc files that a per-ISA .cpp includes after defining
// DSV4_VEC_TARGET (its DSV4_TARGET_* attribute); the .inc puts them in an anonymous namespace,
// so every TU compiles its own copy with its own attribute and the linker can never merge an
// AVX-512 instantiation into code an AVX2 path calls (the ODR hazard of inline templates
// compiled with different target options). The traits below are ordinary inline functions
// with a fixed attribute each, identical in every TU.
#pragma once

#include <cstdint>

#include "core/bf16.h"
#include "kernels/cpu/simd.h"  // its pragmas cover every SIMD function defined below

// Forced inlining: a trait is a wrapper of one or two intrinsics inside hot loops, and an
// always_inline callee whose target the caller lacks is a compile error rather than a call.
#define DSV4_VEC_INLINE inline __attribute__((always_inline))

namespace dsv4::kernels::simd {

struct Avx2 {
  using F = __m256;
  static constexpr int kHalves = 1;  // 8-lane accumulators per register
  static constexpr int kLanes = 8;   // FP32 lanes per register
  static constexpr int kTile = 8;    // rows of a tile (8 registers)
  // Heads the indexer scans score per pass over a decoded tile (accumulators: 8 per head;
  // AVX2 has 16 registers).
  static constexpr int kScanHeads = 1;
  // Registers of output columns the attention value pass keeps per head (2 heads at once).
  static constexpr int kValueRegs = 2;
  // The FP4 linear's chunk schedule (linear_tiles.inc RowTile): fused per register.
  static constexpr bool kFp4DotsFirst = false;

  DSV4_TARGET_AVX2 static DSV4_VEC_INLINE F Zero() { return _mm256_setzero_ps(); }
  DSV4_TARGET_AVX2 static DSV4_VEC_INLINE F Set1(float v) { return _mm256_set1_ps(v); }
  DSV4_TARGET_AVX2 static DSV4_VEC_INLINE F Load(const float* p) { return _mm256_loadu_ps(p); }
  DSV4_TARGET_AVX2 static DSV4_VEC_INLINE void Store(float* p, F v) { _mm256_storeu_ps(p, v); }
  DSV4_TARGET_AVX2 static DSV4_VEC_INLINE F Add(F a, F b) { return _mm256_add_ps(a, b); }
  DSV4_TARGET_AVX2 static DSV4_VEC_INLINE F Mul(F a, F b) { return _mm256_mul_ps(a, b); }
  // a * b + c with one rounding: only where the products are exact (simd.h).
  DSV4_TARGET_AVX2 static DSV4_VEC_INLINE F Fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  DSV4_TARGET_AVX2 static DSV4_VEC_INLINE F Relu(F v) { return Relu8(v); }
  DSV4_TARGET_AVX2 static DSV4_VEC_INLINE F RoundBf16(F v) { return RoundBf16x8(v); }
  // Lane j: the sum of accumulator j (register j % 8, half j / 8) in the canonical combine.
  DSV4_TARGET_AVX2 static DSV4_VEC_INLINE F Reduce(const F* a) { return ReduceLanes8(a); }

  // 8 floats at p, into every half.
  DSV4_TARGET_AVX2 static DSV4_VEC_INLINE F Broadcast8(const float* p) {
    return _mm256_loadu_ps(p);
  }
  // Per half: f(row) of the rows of register p.
  template <class Fn>
  DSV4_TARGET_AVX2 static DSV4_VEC_INLINE F PerRow(int p, const Fn& f) {
    return _mm256_set1_ps(f(p));
  }
  // Per half: s * v[row] for the rows of register p (v: one value per tile row).
  DSV4_TARGET_AVX2 static DSV4_VEC_INLINE F PerRowScaled(float s, const float* v, int p) {
    return _mm256_set1_ps(s * v[p]);
  }

  // kLanes consecutive values at p, exactly: E4M3 codes (× 2^-8, simd.h) and BF16 words.
  DSV4_TARGET_AVX2 static DSV4_VEC_INLINE F E4M3(const uint8_t* p) { return E4M3x8(p); }
  DSV4_TARGET_AVX2 static DSV4_VEC_INLINE F Bf16(const void* p) { return Bf16x8(p); }
  // E4M3 with only the first n (<= kLanes) codes read, 0 past them (AVX2: n must be 8).
  DSV4_TARGET_AVX2 static DSV4_VEC_INLINE F E4M3Prefix(const uint8_t* p, int /*n*/) {
    return E4M3x8(p);
  }

  // Values [k, k + 8) of the rows of register p (E4M3: × 2^-8).
  DSV4_TARGET_AVX2 static DSV4_VEC_INLINE F RowsE4M3(const uint8_t* const* row, int p, int64_t k) {
    return E4M3x8(row[p] + k);
  }
  DSV4_TARGET_AVX2 static DSV4_VEC_INLINE F RowsBf16(const BF16* const* row, int p, int64_t k) {
    return Bf16x8(row[p] + k);
  }
  DSV4_TARGET_AVX2 static DSV4_VEC_INLINE F RowsF32(const float* const* row, int p, int64_t k) {
    return _mm256_loadu_ps(row[p] + k);
  }
  // 32 E2M1 values from byte b of the rows of register p: v[j] = values 8j .. 8j + 7.
  DSV4_TARGET_AVX2 static DSV4_VEC_INLINE void RowsE2M1x32(const uint8_t* const* row, int p,
                                                           int64_t b, F* v) {
    E2M1x32(row[p] + b, v);
  }
};

struct Avx512 {
  using F = __m512;
  static constexpr int kHalves = 2;
  static constexpr int kLanes = 16;
  static constexpr int kTile = 16;
  static constexpr int kScanHeads = 2;  // 16 accumulators of 32 registers
  static constexpr int kValueRegs = 4;
  static constexpr bool kFp4DotsFirst = true;

  DSV4_TARGET_AVX512 static DSV4_VEC_INLINE F Zero() { return _mm512_setzero_ps(); }
  DSV4_TARGET_AVX512 static DSV4_VEC_INLINE F Set1(float v) { return _mm512_set1_ps(v); }
  DSV4_TARGET_AVX512 static DSV4_VEC_INLINE F Load(const float* p) { return _mm512_loadu_ps(p); }
  DSV4_TARGET_AVX512 static DSV4_VEC_INLINE void Store(float* p, F v) { _mm512_storeu_ps(p, v); }
  DSV4_TARGET_AVX512 static DSV4_VEC_INLINE F Add(F a, F b) { return _mm512_add_ps(a, b); }
  DSV4_TARGET_AVX512 static DSV4_VEC_INLINE F Mul(F a, F b) { return _mm512_mul_ps(a, b); }
  DSV4_TARGET_AVX512 static DSV4_VEC_INLINE F Fma(F a, F b, F c) {
    return _mm512_fmadd_ps(a, b, c);
  }
  DSV4_TARGET_AVX512 static DSV4_VEC_INLINE F Relu(F v) { return Relu16(v); }
  DSV4_TARGET_AVX512 static DSV4_VEC_INLINE F RoundBf16(F v) { return RoundBf16x16(v); }
  DSV4_TARGET_AVX512 static DSV4_VEC_INLINE F Reduce(const F* a) { return ReduceLanes16(a); }

  DSV4_TARGET_AVX512 static DSV4_VEC_INLINE F Broadcast8(const float* p) {
    return _mm512_broadcast_f32x8(_mm256_loadu_ps(p));
  }
  template <class Fn>
  DSV4_TARGET_AVX512 static DSV4_VEC_INLINE F PerRow(int p, const Fn& f) {
    return _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(f(p)), _mm512_set1_ps(f(p + 8)));
  }
  // One product for all 16 rows, then spread (the compiler shares it across the 8 p).
  DSV4_TARGET_AVX512 static DSV4_VEC_INLINE F PerRowScaled(float s, const float* v, int p) {
    return _mm512_permutexvar_ps(PairScaleIndex(p),
                                 _mm512_mul_ps(_mm512_set1_ps(s), _mm512_loadu_ps(v)));
  }

  DSV4_TARGET_AVX512 static DSV4_VEC_INLINE F E4M3(const uint8_t* p) { return E4M3x8x2(p, p + 8); }
  DSV4_TARGET_AVX512 static DSV4_VEC_INLINE F Bf16(const void* p) {
    const auto* b = static_cast<const uint8_t*>(p);
    return Bf16x8x2(b, b + 16);
  }

  DSV4_TARGET_AVX512 static DSV4_VEC_INLINE F E4M3Prefix(const uint8_t* p, int n) {
    const __mmask16 live = static_cast<__mmask16>(n >= 16 ? 0xFFFF : (1u << n) - 1);
    return E4M3x16(_mm_maskz_loadu_epi8(live, p));
  }

  DSV4_TARGET_AVX512 static DSV4_VEC_INLINE F RowsE4M3(const uint8_t* const* row, int p,
                                                       int64_t k) {
    return E4M3x8x2(row[p] + k, row[p + 8] + k);
  }
  DSV4_TARGET_AVX512 static DSV4_VEC_INLINE F RowsBf16(const BF16* const* row, int p, int64_t k) {
    return Bf16x8x2(row[p] + k, row[p + 8] + k);
  }
  DSV4_TARGET_AVX512 static DSV4_VEC_INLINE F RowsF32(const float* const* row, int p, int64_t k) {
    return F32x8x2(row[p] + k, row[p + 8] + k);
  }
  DSV4_TARGET_AVX512 static DSV4_VEC_INLINE void RowsE2M1x32(const uint8_t* const* row, int p,
                                                             int64_t b, F* v) {
    E2M1x32x2(row[p] + b, row[p + 8] + b, v);
  }
};

}  // namespace dsv4::kernels::simd
