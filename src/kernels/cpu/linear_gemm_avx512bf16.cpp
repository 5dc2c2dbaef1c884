// FP8 linears (kFp8Block, kFp8AsBf16) over many input rows (prefill chunks) through
// register-blocked VDPBF16PS tiles. The small-row paths (linear_avx512bf16.cpp) hold one pair
// register per two outputs, whose 8 canonical lanes sit side by side in one register: every
// 128-value block of kFp8Block then ends in a 16-output cross-lane reduction (15 shuffles,
// 7 adds per 64 VDPBF16PS), and kFp8AsBf16 decodes its weights again for every 4 rows.
//
// Here the canonical lanes are spread over registers instead: for a tile of 16 outputs,
// register j holds canonical lane j (kernels::Dot8: input k goes to lane k mod 8) of all 16
// outputs of one input row. Its dword i is the pair (value k0 + j, value k0 + 8 + j) of
// output i in pair layout (simd.h); the input row's pair j is a 32-bit broadcast. So one
// VDPBF16PS adds to each of 16 outputs its lane j's two products in ascending order, the
// 8-lane combine ((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7)) is 7 vertical adds, and a tile's
// 16 results are one register of one row (one store).
//
// Schedule per call (rows of one row block, outputs [n0, n1) of one thread): the inputs in
// pair layout once; per tile of 16 outputs, the weights in slices of kSlice values, each
// slice decoded once into an L1 panel (E4M3 -> BF16 words exactly as the small-row paths do,
// then an 8 x 8 dword transpose per 16 values) and read by every input row, kRows rows at a
// time (kRows x 8 accumulators). Per row the state between slices is kept in scratch:
// kFp8Block its running block sum (16 floats), kFp8AsBf16 its 8 lane registers.
//
// Exactness (the canonical orders of LinearTilesScalar, which every ISA reproduces):
// kFp8Block: E4M3 x E4M3 products are exact and at least 2^-18, every partial sum a
// multiple of 2^-18, so VDPBF16PS's two rounded adds per lane are the canonical
// multiply-then-add; per 128-block the lanes start from +0 and combine in the canonical tree,
// then acc += (partial * xscale) * wscale in block order. kFp8AsBf16: BF16 x BF16 products,
// exact when linear_avx512bf16.cpp's range test holds (checked here the same way, vectorised;
// a call that fails it goes back to the small-row paths, which fall back to the FP32 tiles).
#include <algorithm>
#include <bit>
#include <climits>
#include <cstring>

#include "core/grow.h"
#include "kernels/cpu/linear_internal.h"
#include "kernels/cpu/simd.h"  // its pragmas cover every SIMD function defined below

namespace dsv4::kernels::internal {
namespace {

constexpr int kTile = static_cast<int>(kAvx512Tile);  // outputs per tile
constexpr int kPairs = kTile / 2;
constexpr int kRows = 3;          // input rows per micro-kernel pass: 24 accumulators
constexpr int64_t kSlice = 512;   // inputs per panel slice: 16 outputs x 512 BF16 = 16 KiB
constexpr int64_t kSteps = kSlice / 16;

// Per 256-bit half, the 8 x 8 dword transpose of r[0..7]: out[c] lane (8h + i) = r[i] lane
// (8h + c).
DSV4_TARGET_AVX512BF16 inline void TransposeHalves8x8(const __m512i* r, __m512i* out) {
  __m512 t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(_mm512_castsi512_ps(r[2 * i]), _mm512_castsi512_ps(r[2 * i + 1]));
    t[2 * i + 1] =
        _mm512_unpackhi_ps(_mm512_castsi512_ps(r[2 * i]), _mm512_castsi512_ps(r[2 * i + 1]));
  }
  // u[c] (c < 4): per 128-bit lane, column c (lanes 0, 2) or c + 4 (lanes 1, 3) of rows 0-3;
  // u[c + 4] the same of rows 4-7.
  for (int g = 0; g < 2; ++g) {
    u[4 * g + 0] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
    u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
  }
  const __m512i even = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
  const __m512i odd = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
  for (int c = 0; c < 4; ++c) {
    const __m512d lo = _mm512_castps_pd(u[c]), hi = _mm512_castps_pd(u[c + 4]);
    out[c] = _mm512_castpd_si512(_mm512_permutex2var_pd(lo, even, hi));
    out[c + 4] = _mm512_castpd_si512(_mm512_permutex2var_pd(lo, odd, hi));
  }
}

// Slice [k0, k1) of the tile's 16 weight rows (E4M3 codes) -> panel [(k1-k0)/16][8][16]
// dwords: entry (s, j, i) = the BF16 pair (value k0 + 16s + j, value k0 + 16s + 8 + j) of row
// i in pair layout. scales: kFp8AsBf16's row of E8M0 block scales for the tile (every word
// gets its block's exponent added, exact by the range test), nullptr for kFp8Block.
DSV4_TARGET_AVX512BF16 void DecodeSlice(const uint8_t* const* row, const uint8_t* scales,
                                        int64_t k0, int64_t k1,
                                        const simd::E4M3PairConsts& consts, uint32_t* panel) {
  for (int64_t k = k0; k < k1; k += 16) {
    __m512i r[kPairs], t[kPairs];
    const __m512i exponent =
        scales != nullptr ? _mm512_set1_epi16(static_cast<int16_t>((scales[k / 128] - 127) * 128))
                          : _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int p = 0; p < kPairs; ++p) {
      r[p] = simd::E4M3PairsBf16(row[p] + k, row[p + 8] + k, consts);
      if (scales != nullptr) r[p] = simd::ScaleBf16Words(r[p], exponent);
    }
    // r[p] lane j: row p's pair j, lane 8 + j: row p + 8's; after the transpose t[j] lane i:
    // row i's pair j.
    TransposeHalves8x8(r, t);
    uint32_t* dst = panel + ((k - k0) / 16) * kPairs * kTile;
#pragma GCC unroll 8
    for (int j = 0; j < kPairs; ++j) _mm512_store_si512(dst + j * kTile, t[j]);
  }
}

// The canonical lane combine of a[0..7] (one lane register each).
DSV4_TARGET_AVX512BF16 inline __m512 CombineLanes(const __m512* a) {
  return _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a[0], a[1]), _mm512_add_ps(a[2], a[3])),
                       _mm512_add_ps(_mm512_add_ps(a[4], a[5]), _mm512_add_ps(a[6], a[7])));
}

// One 16-value step of kR rows: a[r][j] += row r's pair j x the panel's lane-j register.
// xs: the rows' pairs of the step ([8] dwords each).
template <int kR>
DSV4_TARGET_AVX512BF16 inline void Step(const uint32_t* panel_step, const uint32_t* const* x,
                                        int64_t offset, __m512 (*a)[kPairs]) {
#pragma GCC unroll 8
  for (int j = 0; j < kPairs; ++j) {
    const __m512i w = _mm512_load_si512(panel_step + j * kTile);
    for (int r = 0; r < kR; ++r) {
      a[r][j] = simd::DotBf16(a[r][j], _mm512_set1_epi32(static_cast<int>(x[r][offset + j])), w);
    }
  }
}

// kFp8Block: kR rows over one slice of `blocks` 128-blocks. x[r]: row r's pairs at the slice
// start ([blocks * 64] dwords); xs[r]: its scales of the slice's blocks; ws: the tile's
// weight scales of the slice's blocks; sum[r]: row r's running block sum (16 outputs).
template <int kR>
DSV4_TARGET_AVX512BF16 void BlockedRows(const uint32_t* panel, int64_t blocks,
                                        const uint32_t* const* x, const float* const* xs,
                                        const float* ws, float* const* sum) {
  __m512 s[kR];
  for (int r = 0; r < kR; ++r) s[r] = _mm512_load_ps(sum[r]);
  for (int64_t b = 0; b < blocks; ++b) {
    __m512 a[kR][kPairs];
    for (int r = 0; r < kR; ++r) {
      for (int j = 0; j < kPairs; ++j) a[r][j] = _mm512_setzero_ps();
    }
    for (int64_t st = b * 8; st < b * 8 + 8; ++st) Step<kR>(panel + st * kPairs * kTile, x, st * 8, a);
    const __m512 w = _mm512_set1_ps(ws[b]);
    for (int r = 0; r < kR; ++r) {
      const __m512 part = CombineLanes(a[r]);
      s[r] = _mm512_add_ps(s[r], _mm512_mul_ps(_mm512_mul_ps(part, _mm512_set1_ps(xs[r][b])), w));
    }
  }
  for (int r = 0; r < kR; ++r) _mm512_store_ps(sum[r], s[r]);
}

// kFp8AsBf16: kR rows over one slice of `steps` 16-value steps; lanes[r]: row r's 8 lane
// registers ([8][16] floats), carried across slices.
template <int kR>
DSV4_TARGET_AVX512BF16 void PlainRows(const uint32_t* panel, int64_t steps,
                                      const uint32_t* const* x, float* const* lanes) {
  __m512 a[kR][kPairs];
  for (int r = 0; r < kR; ++r) {
    for (int j = 0; j < kPairs; ++j) a[r][j] = _mm512_load_ps(lanes[r] + j * kTile);
  }
  for (int64_t st = 0; st < steps; ++st) Step<kR>(panel + st * kPairs * kTile, x, st * 8, a);
  for (int r = 0; r < kR; ++r) {
    for (int j = 0; j < kPairs; ++j) _mm512_store_ps(lanes[r] + j * kTile, a[r][j]);
  }
}

// Whether kFp8AsBf16 outputs [n0, n1) of these rows are exact through VDPBF16PS: the test of
// linear_avx512bf16.cpp's PlainBf16Exact (grains of the inputs' smallest exponent - 7 and the
// weights' smallest scale exponent - 9 at least 2^-126, sums far below overflow), with the
// inputs' exponent range from the vectorised scan.
bool PlainExact(const LinearCall& c, int64_t n0, int64_t n1) {
  const LinearWeight& w = *c.w;
  const ExpRange x = ScanInputs(c.x, c.rows * w.in);
  if (!x.ok) return false;
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

// Row r's 16 results (FP32) -> BF16 outputs [t0, t0 + count) of row r.
DSV4_TARGET_AVX512BF16 inline void StoreBf16(__m512 v, int64_t count, BF16* y) {
  const __m512i bits = _mm512_srli_epi32(_mm512_castps_si512(simd::RoundBf16x16(v)), 16);
  _mm256_mask_storeu_epi16(y, static_cast<__mmask16>(simd::FirstLanes16(count)),
                           _mm512_cvtepi32_epi16(bits));
}

template <bool kPlain>
DSV4_TARGET_AVX512BF16 void Gemm(const LinearCall& c, int64_t n0, int64_t n1) {
  const LinearWeight& w = *c.w;
  const int64_t blocks = w.in / 128, scale_cols = (w.in + 127) / 128;
  // Inputs in pair layout [rows][in/16][8] dwords.
  AlignedVector<uint32_t>& xp = c.scratch->x_pairs;
  GrowTo(xp, c.rows * w.in / 2);
  for (int64_t i = 0; i < c.rows * w.in; i += 16) simd::PairsFromF32(c.x + i, xp.data() + i / 2);
  AlignedVector<uint16_t>& panel_words = c.scratch->panel_bf16;
  GrowTo(panel_words, kSlice * kTile);
  uint32_t* panel = reinterpret_cast<uint32_t*>(panel_words.data());
  // Per row: kFp8Block its 16 running sums, kFp8AsBf16 its 8 x 16 lane sums.
  const int64_t state = kPlain ? kPairs * kTile : kTile;
  AlignedVector<float>& acc = c.scratch->panel;
  GrowTo(acc, c.rows * state);
  const simd::E4M3PairConsts consts = simd::MakeE4M3PairConsts();
  float ws[kSlice / 128];
  for (int64_t t0 = n0; t0 < n1; t0 += kTile) {
    const int64_t count = std::min<int64_t>(kTile, n1 - t0);
    const uint8_t* row[kTile];
    for (int i = 0; i < kTile; ++i) {  // a partial tile repeats its last row
      row[i] = w.codes + (t0 + std::min<int64_t>(i, count - 1)) * w.in;
    }
    const int64_t scale_row = (t0 / 128) * scale_cols;  // a tile never straddles 128 rows
    std::fill_n(acc.data(), c.rows * state, 0.0f);
    for (int64_t k0 = 0; k0 < w.in; k0 += kSlice) {
      const int64_t k1 = std::min(w.in, k0 + kSlice);
      DecodeSlice(row, kPlain ? w.scales + scale_row : nullptr, k0, k1, consts, panel);
      const int64_t b0 = k0 / 128, nb = (k1 - k0) / 128;
      if (!kPlain) {
        for (int64_t b = 0; b < nb; ++b) {
          const int64_t tile = scale_row + b0 + b;
          ws[b] = w.scales_f32 != nullptr ? w.scales_f32[tile] : E8M0Table()[w.scales[tile]];
        }
      }
      for (int64_t r0 = 0; r0 < c.rows; r0 += kRows) {
        const int rows = static_cast<int>(std::min<int64_t>(kRows, c.rows - r0));
        const uint32_t* x[kRows];
        const float* xs[kRows];
        float* st[kRows];
        for (int r = 0; r < rows; ++r) {
          x[r] = xp.data() + (r0 + r) * (w.in / 2) + k0 / 2;
          xs[r] = kPlain ? nullptr : c.xscale + (r0 + r) * blocks + b0;
          st[r] = acc.data() + (r0 + r) * state;
        }
        if constexpr (kPlain) {
          const int64_t steps = (k1 - k0) / 16;
          switch (rows) {
            case 1: PlainRows<1>(panel, steps, x, st); break;
            case 2: PlainRows<2>(panel, steps, x, st); break;
            default: PlainRows<3>(panel, steps, x, st); break;
          }
        } else {
          switch (rows) {
            case 1: BlockedRows<1>(panel, nb, x, xs, ws, st); break;
            case 2: BlockedRows<2>(panel, nb, x, xs, ws, st); break;
            default: BlockedRows<3>(panel, nb, x, xs, ws, st); break;
          }
        }
      }
    }
    for (int64_t r = 0; r < c.rows; ++r) {
      const float* s = acc.data() + r * state;
      __m512 v;
      if constexpr (kPlain) {
        __m512 lanes[kPairs];
        for (int j = 0; j < kPairs; ++j) lanes[j] = _mm512_load_ps(s + j * kTile);
        v = CombineLanes(lanes);
      } else {
        v = _mm512_load_ps(s);
      }
      if (c.y_f32 != nullptr) {  // the FP32 results (tests)
        _mm512_mask_storeu_ps(c.y_f32 + r * w.out + t0, simd::FirstLanes16(count), v);
      } else {
        StoreBf16(v, count, c.y + r * w.out + t0);
      }
    }
  }
}

}  // namespace

bool GemmKind(const LinearWeight& w) {
  return w.kind == LinearKind::kFp8Block || w.kind == LinearKind::kFp8AsBf16;
}

DSV4_TARGET_AVX512BF16 bool LinearGemmAvx512Bf16(const LinearCall& c, int64_t n0, int64_t n1) {
  const LinearWeight& w = *c.w;
  if (c.rows < kGemmMinRows || !GemmKind(w) || w.in % 128 != 0) return false;
  if (w.kind == LinearKind::kFp8AsBf16) {
    if (!PlainExact(c, n0, n1)) return false;
    Gemm<true>(c, n0, n1);
  } else {
    Gemm<false>(c, n0, n1);
  }
  return true;
}

}  // namespace dsv4::kernels::internal
