// AVX-512 tile loops of the linears: 16 output rows at a time as 8 registers, register p
// holding the 8-lane accumulators of outputs p (low half) and p + 8 (high half), so every
// output keeps the canonical lane order of kernels::Dot8; the input is broadcast to both
// halves. Otherwise the structure of linear_avx2.cpp.
#include <algorithm>
#include <vector>

#include "core/fp8.h"
#include "core/quant.h"
#include "kernels/cpu/linear_internal.h"
#include "kernels/cpu/simd.h"  // its pragmas cover every SIMD function defined below

namespace dsv4::kernels::internal {
namespace {

constexpr int kTile = static_cast<int>(kAvx512Tile);
constexpr int kPairs = kTile / 2;

// Weight sources: Load32(p, k, v) puts values k + 8j .. k + 8j + 7 of tile rows p and p + 8
// into the halves of v[j], j = 0..3.
struct Fp8Source {  // values × 2^-8 (simd.h)
  const uint8_t* row[kTile];
  DSV4_TARGET_AVX512 void Load32(int p, int64_t k, __m512* v) const {
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) v[j] = simd::E4M3x8x2(row[p] + k + 8 * j, row[p + 8] + k + 8 * j);
  }
};
// kFp8AsBf16: the dequantised values (code x scale, exact), one scale row for the tile
// (16 rows never straddle a 128-row block).
struct Fp8ScaledSource {
  const uint8_t* row[kTile];
  const uint8_t* scales;  // the tile's row of E8M0 codes [ceil(in/128)]
  DSV4_TARGET_AVX512 void Load32(int p, int64_t k, __m512* v) const {
    const __m512 f = _mm512_set1_ps(E8M0Table()[scales[k / 128]] * simd::kE4M3Fp16Unscale);
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      v[j] = _mm512_mul_ps(simd::E4M3x8x2(row[p] + k + 8 * j, row[p + 8] + k + 8 * j), f);
    }
  }
};
struct Fp4Source {
  const uint8_t* row[kTile];
  DSV4_TARGET_AVX512 void Load32(int p, int64_t k, __m512* v) const {
    simd::E2M1x32x2(row[p] + k / 2, row[p + 8] + k / 2, v);
  }
};
struct Bf16Source {
  const BF16* row[kTile];
  DSV4_TARGET_AVX512 void Load32(int p, int64_t k, __m512* v) const {
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) v[j] = simd::Bf16x8x2(row[p] + k + 8 * j, row[p + 8] + k + 8 * j);
  }
};
struct F32Source {
  const float* row[kTile];
  DSV4_TARGET_AVX512 void Load32(int p, int64_t k, __m512* v) const {
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) v[j] = simd::F32x8x2(row[p] + k + 8 * j, row[p + 8] + k + 8 * j);
  }
};
// A tile decoded once: FP32 [in/32][kPairs][4][16].
struct PanelSource {
  const float* panel;
  DSV4_TARGET_AVX512 void Load32(int p, int64_t k, __m512* v) const {
    const float* q = panel + (k / 32) * (kPairs * 64) + p * 64;
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) v[j] = _mm512_loadu_ps(q + 16 * j);
  }
};

struct TileInfo {
  int64_t n0 = 0;
  const float* fp4_ws = nullptr;  // kFp4Row32: FP32 [in/32][kTile] weight scales, transposed
};

// a[p] = canonical 8-lane accumulators (both halves) over x[k0, k1) · weights, from +0.
// kFma: the products are exact (quantised weights times FP8 input codes: at most 8
// significant bits, never below 2^-26), so an FMA rounds exactly like the multiply-then-add
// of the canonical order and is used for speed.
template <bool kFma, class Source>
DSV4_TARGET_AVX512 inline void BlockDots(const Source& src, const float* x, int64_t k0, int64_t k1,
                                         __m512* a) {
#pragma GCC unroll 8
  for (int p = 0; p < kPairs; ++p) a[p] = _mm512_setzero_ps();
  for (int64_t k = k0; k < k1; k += 32) {
    __m512 xv[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) xv[j] = _mm512_broadcast_f32x8(_mm256_loadu_ps(x + k + 8 * j));
#pragma GCC unroll 8
    for (int p = 0; p < kPairs; ++p) {
      __m512 v[4];
      src.Load32(p, k, v);
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
        a[p] = kFma ? _mm512_fmadd_ps(xv[j], v[j], a[p])
                    : _mm512_add_ps(a[p], _mm512_mul_ps(xv[j], v[j]));
      }
    }
  }
}

template <class Source>
DSV4_TARGET_AVX512 __m512 RowTile(const Source& src, const LinearCall& c, const TileInfo& t,
                                  int64_t r) {
  const LinearWeight& w = *c.w;
  const float* x = c.x + r * w.in;
  __m512 a[kPairs];
  if (IsPlainBf16(w.kind) || w.kind == LinearKind::kF32) {
    BlockDots<false>(src, x, 0, w.in, a);
    return simd::ReduceLanes16(a);
  }
  const float* xs = c.xscale + r * (w.in / 128);
  __m512 acc = _mm512_setzero_ps();
  if (w.kind == LinearKind::kFp8Block) {
    const int64_t scale_cols = (w.in + 127) / 128;
    for (int64_t b = 0; b < w.in / 128; ++b) {
      BlockDots<true>(src, x, b * 128, (b + 1) * 128, a);
      const int64_t tile = (t.n0 / 128) * scale_cols + b;
      const float ws = w.scales_f32 != nullptr ? w.scales_f32[tile] : E8M0Table()[w.scales[tile]];
      const __m512 part =
          _mm512_mul_ps(simd::ReduceLanes16(a), _mm512_set1_ps(simd::kE4M3Fp16Unscale));
      acc = _mm512_add_ps(
          acc, _mm512_mul_ps(_mm512_mul_ps(part, _mm512_set1_ps(xs[b])), _mm512_set1_ps(ws)));
    }
    return acc;
  }
  // FP4: Fp4LaneScaledDot's order; each register's lanes keep their sums across chunks,
  // scaled per chunk by the scales of its two rows.
  __m512 lanes[kPairs];
#pragma GCC unroll 8
  for (int p = 0; p < kPairs; ++p) lanes[p] = _mm512_setzero_ps();
  for (int64_t ch = 0; ch < w.in / 32; ++ch) {
    BlockDots<true>(src, x, ch * 32, ch * 32 + 32, a);
    const __m512 s16 =
        _mm512_mul_ps(_mm512_set1_ps(xs[ch / 4]), _mm512_loadu_ps(t.fp4_ws + ch * kTile));
#pragma GCC unroll 8
    for (int p = 0; p < kPairs; ++p) {
      const __m512 s = _mm512_permutexvar_ps(simd::PairScaleIndex(p), s16);
      lanes[p] = _mm512_add_ps(lanes[p], _mm512_mul_ps(a[p], s));
    }
  }
  return simd::ReduceLanes16(lanes);
}

template <class Source>
DSV4_TARGET_AVX512 void DecodePanel(const Source& src, int64_t in, float* panel) {
  for (int64_t k = 0; k < in; k += 32) {
    for (int p = 0; p < kPairs; ++p) {
      __m512 v[4];
      src.Load32(p, k, v);
      float* q = panel + (k / 32) * (kPairs * 64) + p * 64;
      for (int j = 0; j < 4; ++j) _mm512_storeu_ps(q + 16 * j, v[j]);
    }
  }
}

template <class Source>
DSV4_TARGET_AVX512 void Tile(const Source& src, const LinearCall& c, const TileInfo& t,
                             int64_t count) {
  const LinearWeight& w = *c.w;
  thread_local std::vector<float> panel;
  float out[kTile];
  auto store = [&](int64_t r) {
    for (int64_t i = 0; i < count; ++i) {
      if (c.y_f32 != nullptr) {
        c.y_f32[r * w.out + t.n0 + i] = out[i];
      } else {
        c.y[r * w.out + t.n0 + i] = F32ToBf16(out[i]);
      }
    }
  };
  if (c.rows == 1) {
    _mm512_storeu_ps(out, RowTile(src, c, t, 0));
    store(0);
    return;
  }
  panel.resize(static_cast<size_t>(w.in * kTile));
  DecodePanel(src, w.in, panel.data());
  const PanelSource ps{panel.data()};
  for (int64_t r = 0; r < c.rows; ++r) {
    _mm512_storeu_ps(out, RowTile(ps, c, t, r));
    store(r);
  }
}

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
    const __m512 sv = _mm512_set1_ps(s), lo = _mm512_set1_ps(-kE4M3Max),
                 hi = _mm512_set1_ps(kE4M3Max);
    for (int j = 0; j < 8; ++j) {
      // std::clamp order: NaN passes (max/min return their second operand on NaN).
      const __m512 t = _mm512_min_ps(hi, _mm512_max_ps(lo, _mm512_div_ps(v[j], sv)));
      _mm512_storeu_ps(values + b * 128 + 16 * j, RoundToE4M3Grid(t));
    }
  }
}

DSV4_TARGET_AVX512 void LinearTilesAvx512(const LinearCall& c, int64_t n0, int64_t n1) {
  const LinearWeight& w = *c.w;
  thread_local std::vector<float> fp4_ws;
  for (int64_t t0 = n0; t0 < n1; t0 += kTile) {
    const int64_t count = std::min<int64_t>(kTile, n1 - t0);
    int64_t rows[kTile];  // the tile's weight rows; a partial tile repeats its last row
    for (int i = 0; i < kTile; ++i) rows[i] = t0 + std::min<int64_t>(i, count - 1);
    TileInfo t;
    t.n0 = t0;
    switch (w.kind) {
      case LinearKind::kFp8Block: {
        Fp8Source s;
        for (int i = 0; i < kTile; ++i) s.row[i] = w.codes + rows[i] * w.in;
        Tile(s, c, t, count);
        break;
      }
      case LinearKind::kFp4Row32: {
        Fp4Source s;
        const int64_t chunks = w.in / 32;
        fp4_ws.resize(static_cast<size_t>(chunks * kTile));
        Fp4RowPointers(w, rows, kTile, s.row);
        for (int i = 0; i < kTile; ++i) {
          const uint8_t* sc = w.scales + rows[i] * chunks;
          for (int64_t ch = 0; ch < chunks; ++ch) fp4_ws[ch * kTile + i] = E8M0Table()[sc[ch]];
        }
        t.fp4_ws = fp4_ws.data();
        Tile(s, c, t, count);
        break;
      }
      case LinearKind::kFp8AsBf16: {
        Fp8ScaledSource s;
        for (int i = 0; i < kTile; ++i) s.row[i] = w.codes + rows[i] * w.in;
        s.scales = w.scales + (t0 / 128) * ((w.in + 127) / 128);
        Tile(s, c, t, count);
        break;
      }
      case LinearKind::kF32:
        if (w.f32 != nullptr) {
          F32Source s;
          for (int i = 0; i < kTile; ++i) s.row[i] = w.f32 + rows[i] * w.in;
          Tile(s, c, t, count);
          break;
        }
        [[fallthrough]];  // BF16 storage: the same FP32 values as kBf16's
      case LinearKind::kBf16: {
        Bf16Source s;
        for (int i = 0; i < kTile; ++i) s.row[i] = w.bf16 + rows[i] * w.in;
        Tile(s, c, t, count);
        break;
      }
    }
  }
}

}  // namespace dsv4::kernels::internal
