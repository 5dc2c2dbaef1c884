// FP8 linears at a few input rows through VDPBF16PS with the weights decoded by shifts
// (kFp8Block at 1 to kShiftMaxRows rows, kFp8AsBf16 below the GEMM): the AVX-512 BF16 paths
// linear_avx512bf16.cpp hands these calls to. Same results as the canonical order.
#include <algorithm>
#include <cstdint>

#include "kernels/cpu/linear_fp8_shift.h"
#include "kernels/cpu/linear_internal.h"
#include "kernels/cpu/linear_rows_avx512bf16.h"
#include "kernels/cpu/simd.h"  // its pragmas cover every SIMD function defined below

namespace dsv4::kernels::internal {
namespace {

constexpr int kTile = static_cast<int>(kAvx512Tile);
constexpr int kPairs = kTile / 2;

// kFp8Block at 1 to kShiftMaxRows input rows: the weights decoded by shifts. A normal E4M3
// code s.eeee.mmm read as the BF16 word s.0000eeee.mmm0000 (the code in a word's high byte
// by the spreading vpermt2b, an arithmetic shift right by 4, an and) is its value times
// 2^-120, and the input pairs carry x 2^kShiftX (kShiftX in [12, 119]): every input value
// (2^-9 .. 448 times 2^kShiftX), product (at least 2^-18 times 2^(kShiftX-120)) and partial
// sum is then the canonical one times an exact power of two, far from FP32's subnormals and
// overflow, so VDPBF16PS rounds each lane as the canonical order does and one exact multiply
// per block (kShiftFactor) restores the canonical partial. Zero codes give +-0 as they
// should. Subnormal codes (magnitudes 1-7) and the NaN code have no such word: a lookup of
// the 128 magnitudes flags them per two weight rows and 128 columns (one pair register's
// part of a block), and that pair is decoded again through the exact tables
// (E4M3WordsBf16's lookups, true values) and its lanes scaled by 2^-120 (exact: canonical
// sums of E4M3 products are multiples of 2^-18) - about 3% of the pairs of a Gaussian block
// quantised with its amax at 4.5 sigma (the kernel bench's weights). Against Tile's decode (two
// 16-byte loads, an insert, vpermb, two vpermi2b, a blend and a ternlog per 32 weights) this
// is one vpermt2b, a shift and an and, with one lookup per 64 weights; the tile rows sit in
// 64-byte registers and each pair's four lines are consumed together. Up to kShiftMaxRows
// input rows share each decoded register (measured at 1024 x 4096 on one thread, Zen 5: 3 rows
// 264 us against 362 through Tile's panel; 4 rows no faster than the panel). On an Intel Xeon
// whose VDPBF16PS issues once per 2 cycles (Sapphire Rapids class), the decode runs beside the
// dot products and 4-7 rows gain too (2 threads, 4 rows: 4096 x 4096 1,396-1,501 -> 1,149 us,
// 32768 x 1024 4,163 -> 2,461 us). 8 rows measured 1,942 against the GEMM's 2,080-2,144
// there; they stay on the GEMM (kGemmMinRows), whose start at 8 was chosen on Zen 5 against
// the older panel path, until the shifted rows at 8 are measured on Zen 5 too).
// Pair registers interleaved (independent VDPBF16PS chains) for kRows input rows: 4 for 1-2
// rows, 2 for 3-4 (measured 1024 x 4096, 3 rows, one thread: 264 us against 335 with 4), 1
// for 5-7 (kRows chains already; 2 x 7 accumulators would leave too few registers).
template <int kRows>
constexpr int kShiftQ = kRows <= 2 ? 4 : kRows <= 4 ? 2 : 1;
// Software prefetch of each tile row, kShiftPrefetch bytes ahead (past the row's end: the
// same row of the next tile, which is contiguous with this one).
constexpr int64_t kShiftPrefetch = 1024;

DSV4_TARGET_AVX512BF16 ShiftConsts ComputeShiftConsts() {
  ShiftConsts c;
  for (int j = 0; j < 4; ++j) {
    alignas(64) uint8_t idx[64];
    for (int t = 0; t < 64; ++t) {
      const int word = t / 2, lane = word / 2, half = lane / 8, jj = lane % 8;
      const int value = word % 2 == 0 ? 8 + jj : jj;  // pair layout
      idx[t] = static_cast<uint8_t>(64 * half + 16 * j + value);
    }
    c.spread[j] = _mm512_load_si512(idx);
  }
  {
    alignas(64) uint8_t idx[64];
    for (int t = 0; t < 64; ++t) {
      const int word = t / 2, lane = word / 2, jj = lane % 8;
      idx[t] = static_cast<uint8_t>(word % 2 == 0 ? 8 + jj : jj);  // pair layout, in-lane
    }
    c.spread16 = _mm512_load_si512(idx);
  }
  alignas(64) uint8_t odd[128];
  for (int m = 0; m < 128; ++m) odd[m] = (m >= 1 && m <= 7) || m == 127 ? 0xFF : 0;
  c.odd_lo = _mm512_load_si512(odd);
  c.odd_hi = _mm512_load_si512(odd + 64);
  odd[0] = 0xFF;
  c.odd0_lo = _mm512_load_si512(odd);
  c.word_mask = _mm512_set1_epi16(static_cast<int16_t>(0x87F0));
  c.exact = simd::MakeE4M3PairConsts();
  return c;
}

}  // namespace

const ShiftConsts& MakeShiftConsts() {
  static const ShiftConsts consts = ComputeShiftConsts();
  return consts;
}

namespace {

// One pair register's part of a 128-block (rows a, b: 128 codes each) for kRows input rows,
// through the exact tables, added to acc[r] in the canonical lane order. xw[r]: row r's input
// pairs at full width from the block's first column. kAdd: each nonzero word also gets
// `exponent` (kFp8AsBf16's block scale; zero words stay zero).
template <int kRows, bool kAdd>
DSV4_TARGET_AVX512BF16 void ExactPair(const ShiftConsts& c, const uint8_t* a, const uint8_t* b,
                                      const uint32_t* const* xw, __m512i exponent, __m512* acc) {
  for (int h = 0; h < 2; ++h) {
    const __m512i ra = _mm512_loadu_si512(a + 64 * h), rb = _mm512_loadu_si512(b + 64 * h);
    for (int j = 0; j < 4; ++j) {
      __m512i v = ExactWords(c, _mm512_permutex2var_epi8(ra, c.spread[j], rb));
      if constexpr (kAdd) {
        v = _mm512_mask_add_epi16(v, _mm512_test_epi16_mask(v, _mm512_set1_epi16(0x7FFF)), v,
                                  exponent);
      }
      for (int r = 0; r < kRows; ++r) {
        acc[r] = simd::DotBf16(acc[r], _mm512_loadu_si512(xw[r] + 64 * h + 16 * j), v);
      }
    }
  }
}

// One 128-column block of kQ pair registers (rows a[q], b[q] from column k0) through the
// shifted decode, added to acc[q][r] (kQ VDPBF16PS chains overlap); kAdd: each word also gets
// `add` (kFp8AsBf16's block scale exponent). Returns the codes without a shifted word
// (nonzero where any, per odd_lo: ShiftConsts) for the caller's exact redo.
template <int kRows, int kQ, bool kAdd>
DSV4_TARGET_AVX512BF16 __m512i ShiftedBlock(const ShiftConsts& c, __m512i odd_lo,
                                            const uint8_t* const* a, const uint8_t* const* b,
                                            int64_t k0, __m512i add, const uint32_t* const* xw,
                                            __m512 (*acc)[kRows]) {
  __m512i odd = _mm512_setzero_si512();
  for (int h = 0; h < 2; ++h) {
    __m512i ra[kQ], rb[kQ];
    for (int q = 0; q < kQ; ++q) {
      ra[q] = _mm512_loadu_si512(a[q] + k0 + 64 * h);
      rb[q] = _mm512_loadu_si512(b[q] + k0 + 64 * h);
      odd = _mm512_ternarylogic_epi32(odd, _mm512_permutex2var_epi8(odd_lo, ra[q], c.odd_hi),
                                      _mm512_permutex2var_epi8(odd_lo, rb[q], c.odd_hi), 0xFE);
    }
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      for (int q = 0; q < kQ; ++q) {
        const __m512i codes =
            _mm512_maskz_permutex2var_epi8(0xAAAAAAAAAAAAAAAAull, ra[q], c.spread[j], rb[q]);
        __m512i v = _mm512_and_si512(_mm512_srai_epi16(codes, 4), c.word_mask);
        if constexpr (kAdd) v = _mm512_add_epi16(v, add);
        for (int r = 0; r < kRows; ++r) {
          acc[q][r] =
              simd::DotBf16(acc[q][r], _mm512_loadu_si512(xw[r] + k0 + 64 * h + 16 * j), v);
        }
      }
    }
  }
  return odd;
}

// kQ pair registers' parts of a 128-block (a[q], b[q]: their rows' 128 codes), interleaved
// so that kQ VDPBF16PS chains overlap: acc[q][r] = the canonical lane sums times
// 2^(kShiftX - 120). A pair with a code without shifted word is redone by ExactPair and
// scaled by 2^-120 (exact).
template <int kRows, int kQ>
DSV4_TARGET_AVX512BF16 void ShiftPairs(const ShiftConsts& c, const uint8_t* const* a,
                                       const uint8_t* const* b, const uint32_t* const* xw,
                                       __m512 (*acc)[kRows]) {
  for (int q = 0; q < kQ; ++q) {
    for (int r = 0; r < kRows; ++r) acc[q][r] = _mm512_setzero_ps();
  }
  const __m512i odd =
      ShiftedBlock<kRows, kQ, false>(c, c.odd_lo, a, b, 0, _mm512_setzero_si512(), xw, acc);
  if (__builtin_expect(_mm512_test_epi8_mask(odd, odd) == 0, 1)) return;
  const __m512 unshift = _mm512_set1_ps(0x1p-120f);
  for (int q = 0; q < kQ; ++q) {
    const __m512i o = OddCodes(c, c.odd_lo, a[q], b[q]);
    if (_mm512_test_epi8_mask(o, o) == 0) continue;
    for (int r = 0; r < kRows; ++r) acc[q][r] = _mm512_setzero_ps();  // lanes from +0, x 2^kShiftX
    ExactPair<kRows, false>(c, a[q], b[q], xw, _mm512_setzero_si512(), acc[q]);
    for (int r = 0; r < kRows; ++r) acc[q][r] = _mm512_mul_ps(acc[q][r], unshift);
  }
}

// The 16 outputs of a tile (row[i]: weight row i's codes) for kRows input rows (xw[r]: row
// r's scaled pairs at full width, xs[r]: its per-128 scales): per block the pair registers'
// lanes, reduced, times kShiftFactor, then (partial * xs) * ws added in block order.
template <int kRows>
DSV4_TARGET_AVX512BF16 void ShiftRowsTile(const ShiftConsts& c, const LinearWeight& w, int64_t n0,
                                          const uint8_t* const* row, const uint32_t* const* xw,
                                          const float* const* xs, __m512* out) {
  const __m512 factor = _mm512_set1_ps(kShiftFactor);
  for (int r = 0; r < kRows; ++r) out[r] = _mm512_setzero_ps();
  for (int64_t b = 0; b < w.in / 128; ++b) {
    const int64_t k0 = b * 128;
    // Past a row's end, the same row of the next tile (16 rows on).
    const int64_t ahead = k0 + kShiftPrefetch < w.in ? k0 + kShiftPrefetch
                                                     : k0 + kShiftPrefetch + (kTile - 1) * w.in;
    const uint32_t* x[kRows];
    for (int r = 0; r < kRows; ++r) x[r] = xw[r] + k0;
    __m512 lanes[kRows][kPairs];
    for (int p0 = 0; p0 < kPairs; p0 += kShiftQ<kRows>) {
      const uint8_t* a[kShiftQ<kRows>];
      const uint8_t* bb[kShiftQ<kRows>];
      for (int q = 0; q < kShiftQ<kRows>; ++q) {
        a[q] = row[p0 + q] + k0;
        bb[q] = row[p0 + q + 8] + k0;
        for (const uint8_t* pf : {row[p0 + q] + ahead, row[p0 + q + 8] + ahead}) {
          _mm_prefetch(reinterpret_cast<const char*>(pf), _MM_HINT_T0);
          _mm_prefetch(reinterpret_cast<const char*>(pf + 64), _MM_HINT_T0);
        }
      }
      __m512 acc[kShiftQ<kRows>][kRows];
      ShiftPairs<kRows, kShiftQ<kRows>>(c, a, bb, x, acc);
      for (int q = 0; q < kShiftQ<kRows>; ++q) {
        for (int r = 0; r < kRows; ++r) lanes[r][p0 + q] = acc[q][r];
      }
    }
    const __m512 ws = _mm512_set1_ps(Fp8BlockScale(w, n0, b));
    for (int r = 0; r < kRows; ++r) {
      const __m512 part = _mm512_mul_ps(simd::ReduceLanes16(lanes[r]), factor);
      out[r] = _mm512_add_ps(out[r],
                             _mm512_mul_ps(_mm512_mul_ps(part, _mm512_set1_ps(xs[r][b])), ws));
    }
  }
}

// kFp8AsBf16 (in a multiple of 128) with the shifted decode: a nonzero normal code's word
// plus the 128-block scale's exponent (scale - 7, the 2^-120 included) in the exponent field
// is the dequantised BF16 value (Fp8AsBf16ScalesOk keeps it normal), the word the tables
// give. Zero codes join the subnormal and NaN ones (a zero word must stay zero): a 128-column
// chunk of a pair with any of them is redone through the tables from the lane sums before
// it. kQ pair registers interleaved, kRows input rows (xw: full-width pairs, unscaled).
template <int kRows, int kQ>
DSV4_TARGET_AVX512BF16 void PlainShiftPairs(const ShiftConsts& c, const uint8_t* const* a,
                                            const uint8_t* const* b, int64_t k0,
                                            const uint8_t* scales, const uint32_t* const* xw,
                                            __m512 (*acc)[kRows]) {
  const __m512i add = _mm512_set1_epi16(static_cast<int16_t>((scales[k0 / 128] - 7) * 128));
  __m512 before[kQ][kRows];
  for (int q = 0; q < kQ; ++q) {
    for (int r = 0; r < kRows; ++r) before[q][r] = acc[q][r];
  }
  const __m512i odd = ShiftedBlock<kRows, kQ, true>(c, c.odd0_lo, a, b, k0, add, xw, acc);
  if (__builtin_expect(_mm512_test_epi8_mask(odd, odd) == 0, 1)) return;
  const __m512i exponent =
      _mm512_set1_epi16(static_cast<int16_t>((scales[k0 / 128] - 127) * 128));
  for (int q = 0; q < kQ; ++q) {
    const uint8_t* qa = a[q] + k0;
    const uint8_t* qb = b[q] + k0;
    const __m512i o = OddCodes(c, c.odd0_lo, qa, qb);
    if (_mm512_test_epi8_mask(o, o) == 0) continue;
    for (int r = 0; r < kRows; ++r) acc[q][r] = before[q][r];
    const uint32_t* x[kRows];
    for (int r = 0; r < kRows; ++r) x[r] = xw[r] + k0;
    ExactPair<kRows, true>(c, qa, qb, x, exponent, acc[q]);
  }
}

// kFp8AsBf16, in a multiple of 128: RowsTilePlain's outputs through PlainShiftPairs.
template <int kRows>
DSV4_TARGET_AVX512BF16 void PlainShiftRowsTile(const ShiftConsts& c, const uint8_t* const* row,
                                               int64_t in, const uint8_t* scales,
                                               const uint32_t* const* xw, __m512* out) {
  __m512 lanes[kPairs][kRows];
  for (int p = 0; p < kPairs; ++p) {
    for (int r = 0; r < kRows; ++r) lanes[p][r] = _mm512_setzero_ps();
  }
  for (int64_t k0 = 0; k0 < in; k0 += 128) {
    // As ShiftRowsTile: past a row's end, the same row of the next tile.
    const int64_t ahead = k0 + kShiftPrefetch < in ? k0 + kShiftPrefetch
                                                   : k0 + kShiftPrefetch + (kTile - 1) * in;
    for (int p0 = 0; p0 < kPairs; p0 += kShiftQ<kRows>) {
      const uint8_t* a[kShiftQ<kRows>];
      const uint8_t* bb[kShiftQ<kRows>];
      for (int q = 0; q < kShiftQ<kRows>; ++q) {
        a[q] = row[p0 + q];
        bb[q] = row[p0 + q + 8];
        for (const uint8_t* pf : {a[q] + ahead, bb[q] + ahead}) {
          _mm_prefetch(reinterpret_cast<const char*>(pf), _MM_HINT_T0);
          _mm_prefetch(reinterpret_cast<const char*>(pf + 64), _MM_HINT_T0);
        }
      }
      PlainShiftPairs<kRows, kShiftQ<kRows>>(c, a, bb, k0, scales, xw, lanes + p0);
    }
  }
  for (int r = 0; r < kRows; ++r) {
    __m512 l[kPairs];
    for (int p = 0; p < kPairs; ++p) l[p] = lanes[p][r];
    out[r] = simd::ReduceLanes16(l);
  }
}

}  // namespace

// kFp8Block over outputs [n0, n1) for 1 to kShiftMaxRows input rows.
DSV4_TARGET_AVX512BF16 void LinearFp8ShiftAvx512Bf16(const LinearCall& call, int64_t n0,
                                                     int64_t n1) {
  const LinearWeight& w = *call.w;
  const int64_t xs_stride = w.in / 128;
  // The input rows' pairs at full width ([in/16][16] words), x 2^kShiftX (exact).
  AlignedVector<uint32_t>& xp = call.scratch->x_pairs;
  GrowTo(xp, call.rows * w.in);
  for (int64_t r = 0; r < call.rows; ++r) {
    for (int64_t k = 0; k < w.in; k += 16) {
      const __m256i pairs = ShiftedPairs16(call.x + r * w.in + k);
      _mm512_store_si512(xp.data() + r * w.in + k,
                         _mm512_inserti64x4(_mm512_castsi256_si512(pairs), pairs, 1));
    }
  }
  const ShiftConsts& consts = MakeShiftConsts();
  const uint32_t* xw[kShiftMaxRows];
  const float* xs[kShiftMaxRows];
  for (int64_t r = 0; r < call.rows; ++r) {
    xw[r] = xp.data() + r * w.in;
    xs[r] = call.xscale + r * xs_stride;
  }
  for (int64_t t0 = n0; t0 < n1; t0 += kTile) {
    const int64_t count = std::min<int64_t>(kTile, n1 - t0);
    const uint8_t* row[kTile];
    Fp8TileRows(w, t0, count, row);
    __m512 res[kShiftMaxRows];
    switch (call.rows) {
      case 1: ShiftRowsTile<1>(consts, w, t0, row, xw, xs, res); break;
      case 2: ShiftRowsTile<2>(consts, w, t0, row, xw, xs, res); break;
      case 3: ShiftRowsTile<3>(consts, w, t0, row, xw, xs, res); break;
      case 4: ShiftRowsTile<4>(consts, w, t0, row, xw, xs, res); break;
      case 5: ShiftRowsTile<5>(consts, w, t0, row, xw, xs, res); break;
      case 6: ShiftRowsTile<6>(consts, w, t0, row, xw, xs, res); break;
      default: ShiftRowsTile<7>(consts, w, t0, row, xw, xs, res); break;
    }
    for (int64_t r = 0; r < call.rows; ++r) {
      alignas(64) float o[kTile];
      _mm512_store_ps(o, res[r]);
      for (int64_t i = 0; i < count; ++i) call.y[r * w.out + t0 + i] = F32ToBf16(o[i]);
    }
  }
}

// kFp8AsBf16 (in a multiple of 128): all input rows over one tile, 4 at a time.
DSV4_TARGET_AVX512BF16 void Fp8AsBf16ShiftTileAvx512Bf16(const LinearCall& call,
                                                        const uint8_t* const* row,
                                                        const uint8_t* scales, int64_t n0,
                                                        const uint32_t* xw_all, int64_t count) {
  const ShiftConsts& c = MakeShiftConsts();
  const int64_t in = call.w->in;
  TileRowsBy4(call, n0, xw_all, count, [&](auto rows, const uint32_t* const* xw, __m512* res) {
    PlainShiftRowsTile<decltype(rows)::value>(c, row, in, scales, xw, res);
  });
}

}  // namespace dsv4::kernels::internal
