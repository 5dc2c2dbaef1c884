// Quantised linears (FP4 and FP8 weights) through VDPBF16PS (kernels/cpu/simd.h, "pair
// layout"). The input's E4M3 code values become BF16 pairs once per row; the weights' codes
// become BF16 words with a few byte permutes per 32 values (E2M1: multishift picks each
// nibble, vpermb looks up its BF16 bytes; E4M3: vpermb spreads the codes, two vpermi2b look
// up the bytes of the 128 magnitudes); one instruction then does 32 multiply-adds. E2M1 x E4M3 and
// E4M3 x E4M3 products are exact and at least 2^-18 (no FP32 subnormal, which VDPBF16PS would
// flush), and every partial sum is a multiple of 2^-18, so each lane rounds exactly as the
// canonical multiply-then-add order does. Tiles, reduction and block combine as in
// linear_avx512.cpp; other cases go to that file's loops.
#include <algorithm>
#include <bit>
#include <climits>
#include <cstring>
#include <vector>

#include "core/rng.h"
#include "kernels/cpu/linear_internal.h"
#include "kernels/cpu/linear_rows_avx512bf16.h"
#include "kernels/cpu/simd.h"  // its pragmas cover every SIMD function defined below

namespace dsv4::kernels::internal {

bool Fp8AsBf16RangeExact(const ExpRange& x, const LinearWeight& w, int64_t n0, int64_t n1) {
  if (x.max == INT_MIN) return true;  // all zero
  const int64_t scale_cols = (w.in + 127) / 128;
  int s_min = INT_MAX, s_max = INT_MIN;
  for (int64_t rb = n0 / 128; rb <= (n1 - 1) / 128; ++rb) {
    for (int64_t b = 0; b < scale_cols; ++b) {
      const int e = w.scales[rb * scale_cols + b];
      s_min = std::min(s_min, e);
      s_max = std::max(s_max, e);
    }
  }
  const int grain = (x.min - 127 - 7) + (s_min - 127 - 9);
  const int top = (x.max - 127 + 1) + (s_max - 127 + 9) +
                  static_cast<int>(std::bit_width(static_cast<uint64_t>(w.in)));
  return x.min > 0 && x.max < 255 && grain >= -126 && top <= 120;
}

namespace {

constexpr int kTile = static_cast<int>(kAvx512Tile);
constexpr int kPairs = kTile / 2;

// FP4 weights of the tile's 8 register pairs, 16 values at a time, in pair layout.
struct Fp4Source {
  const uint8_t* row[kTile];
  simd::E2M1PairConsts consts;
  DSV4_TARGET_AVX512BF16 __m512i Load16(int p, int64_t k) const {
    return simd::E2M1PairsBf16(row[p] + k / 2, row[p + 8] + k / 2, consts);
  }
};
// FP8 weights, the same (the code values exactly: E4M3 fits BF16).
struct Fp8Source {
  const uint8_t* row[kTile];
  simd::E4M3PairConsts consts;
  DSV4_TARGET_AVX512BF16 __m512i Load16(int p, int64_t k) const {
    return simd::E4M3PairsBf16(row[p] + k, row[p + 8] + k, consts);
  }
};
// kFp8AsBf16: the dequantised values as BF16 words (the E4M3 word with the tile scale's
// exponent added to its exponent field; exact by Fp8AsBf16ScalesOk), 16 values at a time.
struct Fp8ScaledSource {
  const uint8_t* row[kTile];
  const uint8_t* scales;  // the tile's row of E8M0 codes [ceil(in/128)] (16 rows share it)
  simd::E4M3PairConsts consts;
  // `exponent`: the scale's exponent in the BF16 exponent field, in every word
  // (ScaleExponent of the 128-block of k).
  DSV4_TARGET_AVX512BF16 __m512i Load16(int p, int64_t k, __m512i exponent) const {
    const __m512i v = simd::E4M3PairsBf16(row[p] + k, row[p + 8] + k, consts);
    return _mm512_mask_add_epi16(v, _mm512_test_epi16_mask(v, _mm512_set1_epi16(0x7FFF)), v,
                                 exponent);
  }
  DSV4_TARGET_AVX512BF16 __m512i ScaleExponent(int64_t block) const {
    return _mm512_set1_epi16(static_cast<int16_t>((scales[block] - 127) * 128));
  }
};
// A tile decoded once: BF16 words [in/16][kPairs][32].
struct PanelSource {
  const uint16_t* panel;
  DSV4_TARGET_AVX512BF16 __m512i Load16(int p, int64_t k) const {
    return _mm512_loadu_si512(panel + ((k / 16) * kPairs + p) * 32);
  }
};

// Per-tile operands of the block combine.
struct Combine {
  const LinearWeight* w;
  int64_t n0;           // first output of the tile
  const float* fp4_ws;  // kFp4Row32: FP32 [kTile][in/32] weight scales of the tile's rows
};

// FP8: the 16 outputs of kRows input rows (xp[r]: row r in pair layout [in/16][8], xs[r]: its
// per-128 scales): per block, canonical accumulators from +0, reduced, then scaled as
// (partial * xs) * ws and added in block order.
template <int kRows, class Source>
DSV4_TARGET_AVX512BF16 void RowsTile(const Source& src, const Combine& c, const uint32_t* const* xp,
                                     const float* const* xs, __m512* out) {
  const LinearWeight& w = *c.w;
  for (int r = 0; r < kRows; ++r) out[r] = _mm512_setzero_ps();
  for (int64_t b = 0; b < w.in / 128; ++b) {
    __m512 a[kRows][kPairs];
#pragma GCC unroll 8
    for (int p = 0; p < kPairs; ++p) {
      for (int r = 0; r < kRows; ++r) a[r][p] = _mm512_setzero_ps();
    }
    for (int64_t k = b * 128; k < (b + 1) * 128; k += 16) {
      __m512i x[kRows];
      for (int r = 0; r < kRows; ++r) {
        x[r] = _mm512_broadcast_i64x4(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xp[r] + (k / 16) * 8)));
      }
#pragma GCC unroll 8
      for (int p = 0; p < kPairs; ++p) {
        const __m512i v = src.Load16(p, k);
        for (int r = 0; r < kRows; ++r) a[r][p] = simd::DotBf16(a[r][p], x[r], v);
      }
    }
    const __m512 ws = _mm512_set1_ps(Fp8BlockScale(w, c.n0, b));
    for (int r = 0; r < kRows; ++r) {
      const __m512 part = simd::ReduceLanes16(a[r]);
      const float xscale = xs[r][b];
      out[r] =
          _mm512_add_ps(out[r], _mm512_mul_ps(_mm512_mul_ps(part, _mm512_set1_ps(xscale)), ws));
    }
  }
}

// FP4 (Fp4LaneScaledDot's order), two pair registers at a time (a register's lane sums
// depend on no other register; two keep four weight rows streaming): per chunk of 32 a
// register's lanes get their 4 exact products (two VDPBF16PS from +0), times the chunk scales
// of its two rows (one broadcast per half), added to the lane sums, which are reduced once at
// the end. xw[r]: input row r in pair layout at full width ([in/16][16] word pairs, the 8 of
// each 16 values twice, so that loading needs no shuffle); c.fp4_ws: the tile rows' weight
// scales as FP32 [kTile][in/32]. The weight rows are prefetched kFp4Prefetch bytes ahead (a
// GEMV streams them once; measured on this machine: 317 -> 251 us for 2048 x 4096).
constexpr int64_t kFp4Prefetch = 1024;

template <int kRows>
DSV4_TARGET_AVX512BF16 void RowsTileFp4(const Fp4Source& src, const Combine& c,
                                        const uint32_t* const* xw, const float* const* xs,
                                        __m512* out) {
  const LinearWeight& w = *c.w;
  const int64_t chunks = w.in / 32;
  __m512 lanes[kRows][kPairs];
  for (int p0 = 0; p0 < kPairs; p0 += 2) {
    __m512 sum[2][kRows];
    for (int q = 0; q < 2; ++q) {
      for (int r = 0; r < kRows; ++r) sum[q][r] = _mm512_setzero_ps();
    }
    for (int64_t ch = 0; ch < chunks; ++ch) {
      const int64_t k = ch * 32;
      for (int q = 0; q < 2; ++q) {
        const int p = p0 + q;
        if (ch % 4 == 0) {  // one line of each row per 4 chunks
          _mm_prefetch(reinterpret_cast<const char*>(src.row[p] + k / 2 + kFp4Prefetch),
                       _MM_HINT_T0);
          _mm_prefetch(reinterpret_cast<const char*>(src.row[p + 8] + k / 2 + kFp4Prefetch),
                       _MM_HINT_T0);
        }
        // Chunk ch's scale of row p on lanes 0-7, of row p + 8 on lanes 8-15.
        const __m512 ws = _mm512_mask_broadcastss_ps(_mm512_set1_ps(c.fp4_ws[p * chunks + ch]),
                                                     0xFF00,
                                                     _mm_load_ss(c.fp4_ws + (p + 8) * chunks + ch));
        const __m512i v0 = src.Load16(p, k), v1 = src.Load16(p, k + 16);
        for (int r = 0; r < kRows; ++r) {
          const __m512i x0 = _mm512_loadu_si512(xw[r] + k);
          const __m512i x1 = _mm512_loadu_si512(xw[r] + k + 16);
          const __m512 part =
              simd::DotBf16(simd::DotBf16(_mm512_setzero_ps(), x0, v0), x1, v1);
          const __m512 s = _mm512_mul_ps(_mm512_set1_ps(xs[r][ch / 4]), ws);
          sum[q][r] = _mm512_add_ps(sum[q][r], _mm512_mul_ps(part, s));
        }
      }
    }
    for (int q = 0; q < 2; ++q) {
      for (int r = 0; r < kRows; ++r) lanes[r][p0 + q] = sum[q][r];
    }
  }
  for (int r = 0; r < kRows; ++r) out[r] = simd::ReduceLanes16(lanes[r]);
}

// kFp8AsBf16: the canonical 8-lane dot of each output over the whole row (no blocks), one
// pair register at a time, up to 4 input rows per decoded weight register. xw as in
// RowsTileFp4.
// Software prefetch distance of the two weight rows (measured here: none 180-193 us, 512 B
// 165-174, 1 KiB 162-167, 2 KiB 158-177 for 1024 x 4096 on 2 threads).
constexpr int64_t kPlainPrefetch = 1024;

template <int kRows>
DSV4_TARGET_AVX512BF16 void RowsTilePlain(const Fp8ScaledSource& src, int64_t in,
                                          const uint32_t* const* xw, __m512* out) {
  __m512 lanes[kRows][kPairs];
  for (int p = 0; p < kPairs; ++p) {
    __m512 acc[kRows];
    for (int r = 0; r < kRows; ++r) acc[r] = _mm512_setzero_ps();
    for (int64_t k0 = 0; k0 < in; k0 += 128) {
      const __m512i exponent = src.ScaleExponent(k0 / 128);
      for (int64_t k = k0; k < std::min(in, k0 + 128); k += 32) {
        if (k % 64 == 0) {  // one line of each of the pair's rows per 64 columns
          _mm_prefetch(reinterpret_cast<const char*>(src.row[p] + k + kPlainPrefetch),
                       _MM_HINT_NTA);
          _mm_prefetch(reinterpret_cast<const char*>(src.row[p + 8] + k + kPlainPrefetch),
                       _MM_HINT_NTA);
        }
        const __m512i v0 = src.Load16(p, k, exponent), v1 = src.Load16(p, k + 16, exponent);
        for (int r = 0; r < kRows; ++r) {
          acc[r] = simd::DotBf16(acc[r], _mm512_loadu_si512(xw[r] + k), v0);
          acc[r] = simd::DotBf16(acc[r], _mm512_loadu_si512(xw[r] + k + 16), v1);
        }
      }
    }
    for (int r = 0; r < kRows; ++r) lanes[r][p] = acc[r];
  }
  for (int r = 0; r < kRows; ++r) out[r] = simd::ReduceLanes16(lanes[r]);
}

// Fp8AsBf16RangeExact over every input row (any FP32 inputs: the tiles convert them).
bool PlainBf16Exact(const LinearCall& c, int64_t n0, int64_t n1) {
  const LinearWeight& w = *c.w;
  ExpRange x;
  for (int64_t i = 0; i < c.rows * w.in; ++i) {
    const uint32_t bits = std::bit_cast<uint32_t>(c.x[i]) & 0x7FFFFFFFu;
    if (bits == 0) continue;
    const int e = static_cast<int>(bits >> 23);  // biased; 0 = subnormal, 255 = inf/NaN
    x.min = std::min(x.min, e);
    x.max = std::max(x.max, e);
  }
  return Fp8AsBf16RangeExact(x, w, n0, n1);
}

// kFp8AsBf16: all input rows over one tile, 4 at a time.
DSV4_TARGET_AVX512BF16 void TilePlain(const Fp8ScaledSource& src, const LinearCall& call,
                                      int64_t n0, const uint32_t* xw_all, int64_t count) {
  const int64_t in = call.w->in;
  TileRowsBy4(call, n0, xw_all, count, [&](auto rows, const uint32_t* const* xw, __m512* res) {
    RowsTilePlain<decltype(rows)::value>(src, in, xw, res);
  });
}

// FP4: all input rows over one tile, up to 4 rows per pass, decoding in registers (each
// decoded weight register serves every row of the pass).
DSV4_TARGET_AVX512BF16 void TileFp4(const Fp4Source& src, const LinearCall& call,
                                    const Combine& c, const uint32_t* xw_all, int64_t count) {
  const LinearWeight& w = *c.w;
  const int64_t xs_stride = w.in / 128;
  for (int64_t r0 = 0; r0 < call.rows; r0 += 4) {
    const int rows = static_cast<int>(std::min<int64_t>(4, call.rows - r0));
    const uint32_t* xw[4];
    const float* xs[4];
    for (int r = 0; r < rows; ++r) {
      xw[r] = xw_all + (r0 + r) * w.in;
      xs[r] = call.xscale + (r0 + r) * xs_stride;
    }
    __m512 res[4];
    switch (rows) {
      case 1: RowsTileFp4<1>(src, c, xw, xs, res); break;
      case 2: RowsTileFp4<2>(src, c, xw, xs, res); break;
      case 3: RowsTileFp4<3>(src, c, xw, xs, res); break;
      default: RowsTileFp4<4>(src, c, xw, xs, res); break;
    }
    for (int r = 0; r < rows; ++r) {
      alignas(64) float out[kTile];
      _mm512_store_ps(out, res[r]);
      BF16* y = call.y + (r0 + r) * w.out + c.n0;
      for (int64_t i = 0; i < count; ++i) y[i] = F32ToBf16(out[i]);
    }
  }
}

template <class Source>
DSV4_TARGET_AVX512BF16 void DecodePanel(const Source& src, int64_t in, uint16_t* panel) {
  for (int64_t k = 0; k < in; k += 16) {
#pragma GCC unroll 8
    for (int p = 0; p < kPairs; ++p) {
      _mm512_storeu_si512(panel + ((k / 16) * kPairs + p) * 32, src.Load16(p, k));
    }
  }
}

// FP8: all input rows over one tile: in registers for one row, else through a panel, two rows
// per pass over it.
template <class Source>
DSV4_TARGET_AVX512BF16 void Tile(const Source& src, const LinearCall& call, const Combine& c,
                                 const uint32_t* xp_all, int64_t count) {
  const LinearWeight& w = *c.w;
  const int64_t xs_stride = w.in / 128;
  // (uint16_t, not __m512i: std::vector drops the alignment).
  AlignedVector<uint16_t>& panel = call.scratch->panel_bf16;
  float out[2][kTile];
  auto store = [&](int64_t r, const float* o) {
    for (int64_t i = 0; i < count; ++i) call.y[r * w.out + c.n0 + i] = F32ToBf16(o[i]);
  };
  __m512 res[2];
  if (call.rows == 1) {
    const uint32_t* xp[1] = {xp_all};
    const float* xs[1] = {call.xscale};
    RowsTile<1>(src, c, xp, xs, res);
    _mm512_storeu_ps(out[0], res[0]);
    store(0, out[0]);
    return;
  }
  GrowTo(panel, w.in / 16 * kPairs * 32);
  DecodePanel(src, w.in, panel.data());
  const PanelSource ps{panel.data()};
  int64_t r = 0;
  for (; r + 2 <= call.rows; r += 2) {
    const uint32_t* xp[2] = {xp_all + r * w.in / 2, xp_all + (r + 1) * w.in / 2};
    const float* xs[2] = {call.xscale + r * xs_stride, call.xscale + (r + 1) * xs_stride};
    RowsTile<2>(ps, c, xp, xs, res);
    _mm512_storeu_ps(out[0], res[0]);
    _mm512_storeu_ps(out[1], res[1]);
    store(r, out[0]);
    store(r + 1, out[1]);
  }
  if (r < call.rows) {
    const uint32_t* xp[1] = {xp_all + r * w.in / 2};
    const float* xs[1] = {call.xscale + r * xs_stride};
    RowsTile<1>(ps, c, xp, xs, res);
    _mm512_storeu_ps(out[0], res[0]);
    store(r, out[0]);
  }
}

}  // namespace

DSV4_TARGET_AVX512BF16 void LinearTilesAvx512Bf16(const LinearCall& c, int64_t n0, int64_t n1) {
  const LinearWeight& w = *c.w;
  const bool fp4 = w.kind == LinearKind::kFp4Row32;
  const bool plain = w.kind == LinearKind::kFp8AsBf16;
  if (c.rows >= kGemmMinRows) {
    if (FmaGemmPreferred() && LinearGemmAvx512(c, n0, n1)) return;
    if (LinearGemmAvx512Bf16(c, n0, n1)) return;
  }
  if (c.rows >= 2 && Bf16RowsKind(w) && LinearBf16RowsAvx512Bf16(c, n0, n1)) return;
  if (fp4 && c.rows >= kFp4FmaMinRows && FmaGemmPreferred() && LinearFp4FmaAvx512(c, n0, n1)) {
    return;
  }
  if ((fp4 || w.kind == LinearKind::kNvfp4Row16) && w.fp4_tiles != nullptr) {
    LinearFp4TilesAvx512Bf16(c, n0, n1);
    return;
  }
  // NVFP4 in the checkpoint layout (the loader repacks it for this ISA) runs on the FP32 tiles.
  if ((!fp4 && !plain && w.kind != LinearKind::kFp8Block) ||
      (plain && !PlainBf16Exact(c, n0, n1))) {
    LinearTilesAvx512(c, n0, n1);  // the FP32 loops: the same bits
    return;
  }
  if (w.kind == LinearKind::kFp8Block && c.rows <= kShiftMaxRows) {
    LinearFp8ShiftAvx512Bf16(c, n0, n1);
    return;
  }
  const bool wide = fp4 || plain;  // input pairs at full width (RowsTileFp4, RowsTilePlain)
  const int64_t chunks = w.in / 32;
  // Input rows in pair layout (per thread: a few KB, cheap next to the tiles).
  AlignedVector<uint32_t>& xp = c.scratch->x_pairs;
  GrowTo(xp, c.rows * w.in / (wide ? 1 : 2));
  for (int64_t r = 0; r < c.rows; ++r) {
    for (int64_t k = 0; k < w.in; k += 16) {
      if (wide) {
        uint32_t* dst = xp.data() + r * w.in + k;
        simd::PairsFromF32(c.x + r * w.in + k, dst);
        std::memcpy(dst + 8, dst, 8 * sizeof(uint32_t));
      } else {
        simd::PairsFromF32(c.x + r * w.in + k, xp.data() + (r * w.in + k) / 2);
      }
    }
  }
  AlignedVector<float>& ws = c.scratch->fp4_scales;  // FP4: [kTile][chunks]
  if (fp4) GrowTo(ws, kTile * chunks);
  Fp4Source fp4_src;
  Fp8Source fp8_src;
  Fp8ScaledSource plain_src;
  if (fp4) fp4_src.consts = simd::MakeE2M1PairConsts();
  if (!fp4) fp8_src.consts = plain_src.consts = simd::MakeE4M3PairConsts();
  for (int64_t t0 = n0; t0 < n1; t0 += kTile) {
    const int64_t count = std::min<int64_t>(kTile, n1 - t0);
    const Combine combine{&w, t0, ws.data()};
    plain_src.scales = w.scales + (t0 / 128) * ((w.in + 127) / 128);
    for (int i = 0; i < kTile; ++i) {
      const int64_t n =
          t0 + std::min<int64_t>(i, count - 1);  // a partial tile repeats its last row
      if (!fp4) {
        fp8_src.row[i] = plain_src.row[i] = w.codes + n * w.in;
        continue;
      }
      fp4_src.row[i] = w.codes + n * (w.in / 2);
      const uint8_t* sc = w.scales + n * chunks;
      for (int64_t c0 = 0; c0 < chunks; c0 += 16) {
        const __mmask16 live =
            static_cast<__mmask16>(chunks - c0 >= 16 ? 0xFFFF : (1u << (chunks - c0)) - 1);
        const __m512i codes = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(live, sc + c0));
        _mm512_mask_storeu_ps(ws.data() + i * chunks + c0, live, simd::E8M0x16(codes));
      }
    }
    if (fp4) {
      TileFp4(fp4_src, c, combine, xp.data(), count);
    } else if (plain && w.in % 128 == 0) {
      Fp8AsBf16ShiftTileAvx512Bf16(c, plain_src.row, plain_src.scales, t0, xp.data(), count);
    } else if (plain) {
      TilePlain(plain_src, c, t0, xp.data(), count);
    } else {
      Tile(fp8_src, c, combine, xp.data(), count);
    }
  }
}

// Random BF16 operands with exact products and no subnormals: 4096 lanes must all match
// acc + p_odd (rounded) + p_even (rounded).
DSV4_TARGET_AVX512BF16 bool Bf16DotRoundsSequentially() {
  Rng rng(20240611);
  auto random_bf16 = [&](int exp_span) {
    const uint32_t sign = static_cast<uint32_t>(rng.Below(2)) << 15;
    const uint32_t exponent = static_cast<uint32_t>(127 - exp_span / 2 + rng.Below(exp_span));
    return static_cast<uint16_t>(sign | (exponent << 7) | static_cast<uint32_t>(rng.Below(128)));
  };
  auto value = [](uint16_t b) {
    const uint32_t u = static_cast<uint32_t>(b) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  };
  for (int round = 0; round < 256; ++round) {
    alignas(64) uint16_t a[32], b[32];
    alignas(64) float acc[16], out[16];
    for (int i = 0; i < 32; ++i) {
      a[i] = random_bf16(16);
      b[i] = random_bf16(16);
    }
    for (int j = 0; j < 16; ++j)
      acc[j] = value(random_bf16(40)) * static_cast<float>(rng.Below(255));
    _mm512_storeu_ps(
        out, simd::DotBf16(_mm512_loadu_ps(acc), _mm512_loadu_si512(a), _mm512_loadu_si512(b)));
    for (int j = 0; j < 16; ++j) {
      const float p_odd = value(a[2 * j + 1]) * value(b[2 * j + 1]);
      const float p_even = value(a[2 * j]) * value(b[2 * j]);
      const float expected = (acc[j] + p_odd) + p_even;
      uint32_t x, y;
      std::memcpy(&x, &expected, 4);
      std::memcpy(&y, out + j, 4);
      if (x != y) return false;
    }
  }
  return true;
}

}  // namespace dsv4::kernels::internal
