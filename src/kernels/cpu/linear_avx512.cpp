// AVX-512 tile loops of the linears: 16 output rows at a time as 8 registers, register p
// holding the 8-lane accumulators of outputs p (low half) and p + 8 (high half), so every
// output keeps the canonical lane order of kernels::Dot8; the input is broadcast to both
// halves. Otherwise the structure of linear_avx2.cpp.
#include <algorithm>
#include <vector>

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
  if (w.kind == LinearKind::kBf16 || w.kind == LinearKind::kF32) {
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
  for (int64_t ch = 0; ch < w.in / 32; ++ch) {
    BlockDots<true>(src, x, ch * 32, ch * 32 + 32, a);
    const __m512 part = simd::ReduceLanes16(a);
    acc = _mm512_add_ps(acc, _mm512_mul_ps(_mm512_mul_ps(part, _mm512_set1_ps(xs[ch / 4])),
                                           _mm512_loadu_ps(t.fp4_ws + ch * kTile)));
  }
  return acc;
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

}  // namespace

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
        for (int i = 0; i < kTile; ++i) {
          s.row[i] = w.codes + rows[i] * (w.in / 2);
          const uint8_t* sc = w.scales + rows[i] * chunks;
          for (int64_t ch = 0; ch < chunks; ++ch) fp4_ws[ch * kTile + i] = E8M0Table()[sc[ch]];
        }
        t.fp4_ws = fp4_ws.data();
        Tile(s, c, t, count);
        break;
      }
      case LinearKind::kBf16: {
        Bf16Source s;
        for (int i = 0; i < kTile; ++i) s.row[i] = w.bf16 + rows[i] * w.in;
        Tile(s, c, t, count);
        break;
      }
      case LinearKind::kF32: {
        F32Source s;
        for (int i = 0; i < kTile; ++i) s.row[i] = w.f32 + rows[i] * w.in;
        Tile(s, c, t, count);
        break;
      }
    }
  }
}

}  // namespace dsv4::kernels::internal
