// AVX2 tile loops of the linears: 8 output rows at a time, one __m256 8-lane accumulator per
// output and block (the canonical dot order of kernels::Dot8), reduced together with hadds.
// Weights are decoded in registers (E4M3 and E2M1 through FP16 patterns); with 2+ input rows
// the tile's weights are decoded once into an FP32 panel that every row then reads.
#include <algorithm>
#include <vector>

#include "kernels/cpu/linear_internal.h"
#include "kernels/cpu/simd.h"  // its pragmas cover every SIMD function defined below

namespace dsv4::kernels::internal {
namespace {

using simd::E2M1x32;
using simd::E4M3x8;
constexpr int kTile = static_cast<int>(kAvx2Tile);

// Weight sources: Load32(i, k, v) puts values k .. k+31 of tile row i into v[0..3].
struct Fp8Source {  // values × 2^-8 (simd.h)
  const uint8_t* row[kTile];
  DSV4_TARGET_AVX2 void Load32(int i, int64_t k, __m256* v) const {
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) v[j] = E4M3x8(row[i] + k + 8 * j);
  }
};
// kFp8AsBf16: the dequantised values (code x scale, exact), one scale row for the tile
// (8 rows never straddle a 128-row block).
struct Fp8ScaledSource {
  const uint8_t* row[kTile];
  const uint8_t* scales;  // the tile's row of E8M0 codes [ceil(in/128)]
  DSV4_TARGET_AVX2 void Load32(int i, int64_t k, __m256* v) const {
    const __m256 f = _mm256_set1_ps(E8M0Table()[scales[k / 128]] * simd::kE4M3Fp16Unscale);
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) v[j] = _mm256_mul_ps(E4M3x8(row[i] + k + 8 * j), f);
  }
};
struct Fp4Source {
  const uint8_t* row[kTile];
  DSV4_TARGET_AVX2 void Load32(int i, int64_t k, __m256* v) const { E2M1x32(row[i] + k / 2, v); }
};
struct Bf16Source {
  const BF16* row[kTile];
  DSV4_TARGET_AVX2 void Load32(int i, int64_t k, __m256* v) const {
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) v[j] = simd::Bf16x8(row[i] + k + 8 * j);
  }
};
struct F32Source {
  const float* row[kTile];
  DSV4_TARGET_AVX2 void Load32(int i, int64_t k, __m256* v) const {
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) v[j] = _mm256_loadu_ps(row[i] + k + 8 * j);
  }
};
// A tile decoded once: FP32 [in/32][kTile][32].
struct PanelSource {
  const float* panel;
  DSV4_TARGET_AVX2 void Load32(int i, int64_t k, __m256* v) const {
    const float* p = panel + (k / 32) * (kTile * 32) + i * 32;
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) v[j] = _mm256_loadu_ps(p + 8 * j);
  }
};

// Per-tile state shared by the row loops.
struct TileInfo {
  int64_t n0 = 0;                 // first output of the tile
  const float* fp4_ws = nullptr;  // kFp4Row32: FP32 [in/32][kTile] weight scales, transposed
};

// a[i] = canonical 8-lane accumulators of x[k0, k1) · (tile row i)[k0, k1), from +0.
// kFma: see linear_avx512.cpp (exact products, so FMA gives the canonical bits).
template <bool kFma, class Source>
DSV4_TARGET_AVX2 inline void BlockDots(const Source& src, const float* x, int64_t k0, int64_t k1,
                                       __m256* a) {
#pragma GCC unroll 8
  for (int i = 0; i < kTile; ++i) a[i] = _mm256_setzero_ps();
  for (int64_t k = k0; k < k1; k += 32) {
#pragma GCC unroll 8
    for (int i = 0; i < kTile; ++i) {
      __m256 v[4];
      src.Load32(i, k, v);
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
        const __m256 xv = _mm256_loadu_ps(x + k + 8 * j);
        a[i] =
            kFma ? _mm256_fmadd_ps(xv, v[j], a[i]) : _mm256_add_ps(a[i], _mm256_mul_ps(xv, v[j]));
      }
    }
  }
}

// The tile's 8 outputs for input row r (before BF16 rounding).
template <class Source>
DSV4_TARGET_AVX2 __m256 RowTile(const Source& src, const LinearCall& c, const TileInfo& t,
                                int64_t r) {
  const LinearWeight& w = *c.w;
  const float* x = c.x + r * w.in;
  __m256 a[kTile];
  if (IsPlainBf16(w.kind) || w.kind == LinearKind::kF32) {
    BlockDots<false>(src, x, 0, w.in, a);
    return simd::ReduceLanes8(a);
  }
  const float* xs = c.xscale + r * (w.in / 128);
  __m256 acc = _mm256_setzero_ps();
  if (w.kind == LinearKind::kFp8Block) {
    const int64_t scale_cols = (w.in + 127) / 128;
    for (int64_t b = 0; b < w.in / 128; ++b) {
      BlockDots<true>(src, x, b * 128, (b + 1) * 128, a);
      const int64_t tile = (t.n0 / 128) * scale_cols + b;
      const float ws = w.scales_f32 != nullptr ? w.scales_f32[tile] : E8M0Table()[w.scales[tile]];
      const __m256 part =
          _mm256_mul_ps(simd::ReduceLanes8(a), _mm256_set1_ps(simd::kE4M3Fp16Unscale));
      acc = _mm256_add_ps(
          acc, _mm256_mul_ps(_mm256_mul_ps(part, _mm256_set1_ps(xs[b])), _mm256_set1_ps(ws)));
    }
    return acc;
  }
  // FP4: Fp4LaneScaledDot's order; each row's lanes keep their sums across chunks.
  __m256 lanes[kTile];
#pragma GCC unroll 8
  for (int i = 0; i < kTile; ++i) lanes[i] = _mm256_setzero_ps();
  for (int64_t ch = 0; ch < w.in / 32; ++ch) {
    const __m256 xv[4] = {_mm256_loadu_ps(x + ch * 32), _mm256_loadu_ps(x + ch * 32 + 8),
                          _mm256_loadu_ps(x + ch * 32 + 16), _mm256_loadu_ps(x + ch * 32 + 24)};
    const float xscale = xs[ch / 4];
#pragma GCC unroll 8
    for (int i = 0; i < kTile; ++i) {
      __m256 v[4];
      src.Load32(i, ch * 32, v);
      __m256 part = _mm256_mul_ps(xv[0], v[0]);  // exact products: FMA rounds the same
#pragma GCC unroll 3
      for (int j = 1; j < 4; ++j) part = _mm256_fmadd_ps(xv[j], v[j], part);
      const __m256 s = _mm256_set1_ps(xscale * t.fp4_ws[ch * kTile + i]);
      lanes[i] = _mm256_add_ps(lanes[i], _mm256_mul_ps(part, s));
    }
  }
  return simd::ReduceLanes8(lanes);
}

template <class Source>
DSV4_TARGET_AVX2 void DecodePanel(const Source& src, int64_t in, float* panel) {
  for (int64_t k = 0; k < in; k += 32) {
    for (int i = 0; i < kTile; ++i) {
      __m256 v[4];
      src.Load32(i, k, v);
      float* p = panel + (k / 32) * (kTile * 32) + i * 32;
      for (int j = 0; j < 4; ++j) _mm256_storeu_ps(p + 8 * j, v[j]);
    }
  }
}

// Runs every input row over one tile, decoding in registers for a single row and through a
// panel for several (the same values either way, so the same bits).
template <class Source>
DSV4_TARGET_AVX2 void Tile(const Source& src, const LinearCall& c, const TileInfo& t,
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
    _mm256_storeu_ps(out, RowTile(src, c, t, 0));
    store(0);
    return;
  }
  panel.resize(static_cast<size_t>(w.in * kTile));
  DecodePanel(src, w.in, panel.data());
  const PanelSource ps{panel.data()};
  for (int64_t r = 0; r < c.rows; ++r) {
    _mm256_storeu_ps(out, RowTile(ps, c, t, r));
    store(r);
  }
}

}  // namespace

DSV4_TARGET_AVX2 void LinearTilesAvx2(const LinearCall& c, int64_t n0, int64_t n1) {
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
