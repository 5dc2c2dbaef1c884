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
#include <type_traits>
#include <vector>

#include "core/rng.h"
#include "kernels/cpu/linear_internal.h"
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
  const int64_t scale_cols = (w.in + 127) / 128;
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
    const int64_t tile = (c.n0 / 128) * scale_cols + b;
    const __m512 ws = _mm512_set1_ps(w.scales_f32 != nullptr ? w.scales_f32[tile]
                                                             : E8M0Table()[w.scales[tile]]);
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

// All input rows over one tile n0 (`count` outputs), 4 at a time: rows_tile(R, xw, res) with
// R a std::integral_constant of the rows (1-4) computes res[R] from xw[R] (row r's
// full-width pairs: xw_all + r * in); the outputs are rounded to BF16 in call.y.
template <class RowsTile>
DSV4_TARGET_AVX512BF16 void TileRowsBy4(const LinearCall& call, int64_t n0,
                                        const uint32_t* xw_all, int64_t count,
                                        RowsTile&& rows_tile) {
  const LinearWeight& w = *call.w;
  for (int64_t r0 = 0; r0 < call.rows; r0 += 4) {
    const int rows = static_cast<int>(std::min<int64_t>(4, call.rows - r0));
    const uint32_t* xw[4];
    for (int r = 0; r < rows; ++r) xw[r] = xw_all + (r0 + r) * w.in;
    __m512 res[4];
    switch (rows) {
      case 1: rows_tile(std::integral_constant<int, 1>{}, xw, res); break;
      case 2: rows_tile(std::integral_constant<int, 2>{}, xw, res); break;
      case 3: rows_tile(std::integral_constant<int, 3>{}, xw, res); break;
      default: rows_tile(std::integral_constant<int, 4>{}, xw, res); break;
    }
    for (int r = 0; r < rows; ++r) {
      alignas(64) float out[kTile];
      _mm512_store_ps(out, res[r]);
      BF16* y = call.y + (r0 + r) * w.out + n0;
      for (int64_t i = 0; i < count; ++i) y[i] = F32ToBf16(out[i]);
    }
  }
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

// ---------------------------------------------------------------------------------------
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
// input rows share each decoded register (measured at 1024 x 4096 on one thread: 3 rows
// 264 us against 362 through Tile's panel; 4 rows no faster than the panel).
constexpr int kShiftX = 64;
constexpr float kShiftFactor = 0x1p56f;  // 2^(120 - kShiftX)
constexpr int64_t kShiftMaxRows = 3;
// Pair registers interleaved (independent VDPBF16PS chains) for kRows input rows: 4 for 1-2
// rows, 2 for 3-4 (measured 1024 x 4096, 3 rows, one thread: 264 us against 335 with 4).
template <int kRows>
constexpr int kShiftQ = kRows <= 2 ? 4 : 2;
// Software prefetch of each tile row, kShiftPrefetch bytes ahead (past the row's end: the
// same row of the next tile, which is contiguous with this one).
constexpr int64_t kShiftPrefetch = 1024;

struct ShiftConsts {
  __m512i spread[4];   // vpermt2b: register j of 64 columns, row a's codes in bytes 0-63 and
                       // row b's in 64-127; both bytes of each word get the code
  __m512i odd_lo, odd_hi;  // 0xFF at the magnitudes without a shifted word (1-7, 127)
  __m512i odd0_lo;         // odd_lo with magnitude 0 too (kFp8AsBf16)
  __m512i word_mask;   // 0x87F0: sign and the shifted magnitude
  simd::E4M3PairConsts exact;
};

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

// Computed once (a few hundred scalar steps: measurable next to a small GEMV).
DSV4_TARGET_AVX512BF16 const ShiftConsts& MakeShiftConsts() {
  static const ShiftConsts consts = ComputeShiftConsts();
  return consts;
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

// One pair register's part of a 128-block (rows a, b: 128 codes each) for kRows input rows,
// through the exact tables: acc[r] = the canonical lane sums from +0 times 2^kShiftX. xw[r]:
// row r's scaled input pairs at full width from the block's first column.
template <int kRows>
DSV4_TARGET_AVX512BF16 void ExactPair(const ShiftConsts& c, const uint8_t* a, const uint8_t* b,
                                      const uint32_t* const* xw, __m512* acc) {
  for (int r = 0; r < kRows; ++r) acc[r] = _mm512_setzero_ps();
  for (int h = 0; h < 2; ++h) {
    const __m512i ra = _mm512_loadu_si512(a + 64 * h), rb = _mm512_loadu_si512(b + 64 * h);
    for (int j = 0; j < 4; ++j) {
      const __m512i v = ExactWords(c, _mm512_permutex2var_epi8(ra, c.spread[j], rb));
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
    ExactPair<kRows>(c, a[q], b[q], xw, acc[q]);
    for (int r = 0; r < kRows; ++r) acc[q][r] = _mm512_mul_ps(acc[q][r], unshift);
  }
}

// The 16 outputs of a tile (row[i]: weight row i's codes) for kRows input rows (xw[r]: row
// r's scaled pairs at full width, xs[r]: its per-128 scales): per block the pair registers'
// lanes, reduced, times kShiftFactor, then (partial * xs) * ws added in block order.
template <int kRows>
DSV4_TARGET_AVX512BF16 void ShiftRowsTile(const ShiftConsts& c, const Combine& cb,
                                          const uint8_t* const* row, const uint32_t* const* xw,
                                          const float* const* xs, __m512* out) {
  const LinearWeight& w = *cb.w;
  const int64_t scale_cols = (w.in + 127) / 128;
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
    const int64_t tile = (cb.n0 / 128) * scale_cols + b;
    const __m512 ws = _mm512_set1_ps(w.scales_f32 != nullptr ? w.scales_f32[tile]
                                                             : E8M0Table()[w.scales[tile]]);
    for (int r = 0; r < kRows; ++r) {
      const __m512 part = _mm512_mul_ps(simd::ReduceLanes16(lanes[r]), factor);
      out[r] = _mm512_add_ps(out[r],
                             _mm512_mul_ps(_mm512_mul_ps(part, _mm512_set1_ps(xs[r][b])), ws));
    }
  }
}

// kFp8Block over outputs [n0, n1) for 1 to kShiftMaxRows input rows.
DSV4_TARGET_AVX512BF16 void ShiftTiles(const LinearCall& call, int64_t n0, int64_t n1) {
  const LinearWeight& w = *call.w;
  const int64_t xs_stride = w.in / 128;
  // The input rows' pairs at full width ([in/16][16] words), x 2^kShiftX (exact).
  AlignedVector<uint32_t>& xp = call.scratch->x_pairs;
  GrowTo(xp, call.rows * w.in);
  const __m256 shift = _mm256_set1_ps(0x1p64f);
  static_assert(kShiftX == 64);
  const __m256i high = _mm256_set1_epi32(static_cast<int32_t>(0xFFFF0000u));
  for (int64_t r = 0; r < call.rows; ++r) {
    for (int64_t k = 0; k < w.in; k += 16) {  // simd::PairsFromF32 of the scaled values
      const float* v = call.x + r * w.in + k;
      const __m256i v0 = _mm256_castps_si256(_mm256_mul_ps(_mm256_loadu_ps(v), shift));
      const __m256i v1 = _mm256_castps_si256(_mm256_mul_ps(_mm256_loadu_ps(v + 8), shift));
      const __m256i pairs = _mm256_or_si256(_mm256_srli_epi32(v1, 16), _mm256_and_si256(v0, high));
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
    for (int i = 0; i < kTile; ++i) {  // a partial tile repeats its last row
      row[i] = w.codes + (t0 + std::min<int64_t>(i, count - 1)) * w.in;
    }
    const Combine cb{&w, t0, nullptr};
    __m512 res[kShiftMaxRows];
    switch (call.rows) {
      case 1: ShiftRowsTile<1>(consts, cb, row, xw, xs, res); break;
      case 2: ShiftRowsTile<2>(consts, cb, row, xw, xs, res); break;
      default: ShiftRowsTile<3>(consts, cb, row, xw, xs, res); break;
    }
    for (int64_t r = 0; r < call.rows; ++r) {
      alignas(64) float o[kTile];
      _mm512_store_ps(o, res[r]);
      for (int64_t i = 0; i < count; ++i) call.y[r * w.out + t0 + i] = F32ToBf16(o[i]);
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
    for (int h = 0; h < 2; ++h) {
      const __m512i ra = _mm512_loadu_si512(qa + 64 * h), rb = _mm512_loadu_si512(qb + 64 * h);
      for (int j = 0; j < 4; ++j) {
        __m512i v = ExactWords(c, _mm512_permutex2var_epi8(ra, c.spread[j], rb));
        v = _mm512_mask_add_epi16(v, _mm512_test_epi16_mask(v, _mm512_set1_epi16(0x7FFF)), v,
                                  exponent);
        for (int r = 0; r < kRows; ++r) {
          acc[q][r] =
              simd::DotBf16(acc[q][r], _mm512_loadu_si512(xw[r] + k0 + 64 * h + 16 * j), v);
        }
      }
    }
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

// kFp8AsBf16 (in a multiple of 128): all input rows over one tile, 4 at a time.
DSV4_TARGET_AVX512BF16 void TilePlainShift(const ShiftConsts& c, const Fp8ScaledSource& src,
                                           const LinearCall& call, int64_t n0,
                                           const uint32_t* xw_all, int64_t count) {
  const int64_t in = call.w->in;
  TileRowsBy4(call, n0, xw_all, count, [&](auto rows, const uint32_t* const* xw, __m512* res) {
    PlainShiftRowsTile<decltype(rows)::value>(c, src.row, in, src.scales, xw, res);
  });
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
  if (c.rows >= 2 && Bf16RowsKind(w) && LinearBf16RowsAvx512Bf16(c, n0, n1)) return;
  if (c.rows >= kGemmMinRows && LinearGemmAvx512Bf16(c, n0, n1)) return;
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
    ShiftTiles(c, n0, n1);
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
  const ShiftConsts& shift_consts = MakeShiftConsts();
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
      TilePlainShift(shift_consts, plain_src, c, t0, xp.data(), count);
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
