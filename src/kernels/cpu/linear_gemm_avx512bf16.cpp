// FP8 linears (kFp8Block, kFp8AsBf16) over many input rows (prefill chunks) through
// VDPBF16PS, the weights decoded once per slice for a whole row block. The small-row paths
// (linear_avx512bf16.cpp) decode a tile's whole input width into a panel for every row block
// of the front end (16 rows at in = 4096) and run 2 rows per pass over it (10 loads per 16
// VDPBF16PS), and kFp8AsBf16 decodes its weights in registers again for every 4 rows.
//
// Schedule per call (up to kGemmRowBlock rows; outputs [n0, n1) of one thread): the inputs
// in pair layout (simd.h) once; per tile of 16 outputs, the weights in slices of kSlice
// values, each slice decoded once into a 16 KiB L1 panel in pair layout (pair register p
// holds outputs p and p + 8, 8 canonical lanes each; kFp8Block in the shifted words of
// linear_fp8_shift.h with the inputs x 2^kShiftX, kFp8AsBf16 through the exact tables) and
// read by every row of the block, kRows rows at a time: 3 x 8 accumulators, 8
// panel loads and 3 input broadcasts per 24 VDPBF16PS. Between slices a row keeps its state
// in scratch (kFp8Block its running block sums, 16 floats; kFp8AsBf16 its 8 pair registers
// of lane sums); after its last slice its 16 outputs are stored from registers.
// (Spreading the 8 canonical lanes over 8 registers instead, for a vertical lane combine,
// needs a 32-bit broadcast per VDPBF16PS and measured ~15% slower here.)
//
// Exactness (the canonical orders of LinearTilesScalar, which every ISA reproduces):
// kFp8Block: E4M3 x E4M3 products are exact and at least 2^-18, every partial sum a
// multiple of 2^-18, so VDPBF16PS's two rounded adds per lane are the canonical
// multiply-then-add; per 128-block the lanes start from +0 and combine in the canonical tree
// (simd::ReduceLanes16), then acc += (partial * xscale) * wscale in block order, from +0.
// With the shifted words every lane sum is the canonical one times 2^(kShiftX - 120) (pairs
// of a block decoded in true values: times 2^kShiftX, scaled by 2^-120 after the block), an
// exact power of two that kShiftFactor undoes per block.
// kFp8AsBf16: BF16 x BF16 products over the whole row, exact when linear_avx512bf16.cpp's
// range test holds (checked here the same way, on a vectorised scan of the inputs; a call
// that fails it goes back to the small-row paths, which fall back to the FP32 tiles).
#include <algorithm>
#include <bit>
#include <climits>

#include "core/grow.h"
#include "kernels/cpu/linear_fp8_shift.h"
#include "kernels/cpu/linear_internal.h"
#include "kernels/cpu/simd.h"  // its pragmas cover every SIMD function defined below

namespace dsv4::kernels::internal {
namespace {

constexpr int kTile = static_cast<int>(kAvx512Tile);  // outputs per tile
constexpr int kPairs = kTile / 2;
constexpr int kRows = 3;         // input rows per pass over a slice: 24 accumulators
constexpr int64_t kSlice = 512;  // inputs per panel slice: 16 outputs x 512 BF16 = 16 KiB

// kFp8AsBf16: slice [k0, k1) of the tile's 16 weight rows (E4M3 codes) -> panel
// [(k1-k0)/16][8][32 words] in pair layout (pair register p holds row p in dword lanes 0-7,
// row p + 8 in 8-15), each word with its block's exponent added from `scales`, the tile's row
// of E8M0 block scales (exact by the range test).
DSV4_TARGET_AVX512BF16 void DecodeSlice(const uint8_t* const* row, const uint8_t* scales,
                                        int64_t k0, int64_t k1,
                                        const simd::E4M3PairConsts& consts, uint32_t* panel) {
  for (int64_t k = k0; k < k1; k += 16) {
    const __m512i exponent =
        _mm512_set1_epi16(static_cast<int16_t>((scales[k / 128] - 127) * 128));
    uint32_t* dst = panel + ((k - k0) / 16) * kPairs * kTile;
#pragma GCC unroll 8
    for (int p = 0; p < kPairs; ++p) {
      const __m512i v = simd::E4M3PairsBf16(row[p] + k, row[p + 8] + k, consts);
      _mm512_store_si512(dst + p * kTile, simd::ScaleBf16Words(v, exponent));
    }
  }
}

// kFp8Block: slice [k0, k1) of the tile's 16 weight rows -> panel in DecodeSlice's layout, in
// shifted words (linear_fp8_shift.h: value x 2^-120), except a pair register's part of a
// 128-block holding a code without a shifted word: true-value words through the tables, and
// bit p of odd[block] set (the block's lane sums of pair p are then scaled by 2^-120 after the
// block).
DSV4_TARGET_AVX512BF16 void DecodeSliceShifted(const uint8_t* const* row, int64_t k0, int64_t k1,
                                               const ShiftConsts& c, uint32_t* panel,
                                               uint8_t* odd) {
  for (int64_t kb = k0; kb < k1; kb += 128) {
    uint32_t* block = panel + ((kb - k0) / 16) * kPairs * kTile;
    unsigned mask = 0;
#pragma GCC unroll 2
    for (int p = 0; p < kPairs; ++p) {
      const uint8_t* a = row[p] + kb;
      const uint8_t* b = row[p + 8] + kb;
#pragma GCC unroll 8
      for (int st = 0; st < 8; ++st) {
        _mm512_store_si512(block + (st * kPairs + p) * kTile,
                           ShiftedPairWords(c, a + 16 * st, b + 16 * st));
      }
      const __m512i o = OddCodes(c, c.odd_lo, a, b);
      if (__builtin_expect(_mm512_test_epi8_mask(o, o) != 0, 0)) {
        mask |= 1u << p;
        for (int st = 0; st < 8; ++st) {
          _mm512_store_si512(block + (st * kPairs + p) * kTile,
                             simd::E4M3PairsBf16(a + 16 * st, b + 16 * st, c.exact));
        }
      }
    }
    odd[(kb - k0) / 128] = static_cast<uint8_t>(mask);
  }
}

// One 16-value step of kR rows: a[r][p] += row r's 16 values (pair layout, both halves) x
// pair register p of the panel. x[r] + offset: the row's 8 pair dwords of the step.
template <int kR>
DSV4_TARGET_AVX512BF16 inline void Step(const uint32_t* panel_step, const uint32_t* const* x,
                                        int64_t offset, __m512 (*a)[kPairs]) {
  __m512i xb[kR];
  for (int r = 0; r < kR; ++r) {
    xb[r] = _mm512_broadcast_i64x4(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[r] + offset)));
  }
#pragma GCC unroll 8
  for (int p = 0; p < kPairs; ++p) {
    const __m512i w = _mm512_load_si512(panel_step + p * kTile);
    for (int r = 0; r < kR; ++r) a[r][p] = simd::DotBf16(a[r][p], xb[r], w);
  }
}

// 16 results (FP32) of one row -> its outputs: FP32 (tests) or BF16 (RNE, F32ToBf16's bits),
// the first `count`. The words are packed with a permute and stored plainly (a masked
// VPMOVDW to memory is slow on AMD).
DSV4_TARGET_AVX512BF16 inline void StoreRow(__m512 v, int64_t count, BF16* y, float* y_f32) {
  if (y_f32 != nullptr) {
    _mm512_mask_storeu_ps(y_f32, simd::FirstLanes16(count), v);
    return;
  }
  const __m512i odd_words = _mm512_setr_epi32(0x00030001, 0x00070005, 0x000B0009, 0x000F000D,
                                              0x00130011, 0x00170015, 0x001B0019, 0x001F001D,
                                              0, 0, 0, 0, 0, 0, 0, 0);
  const __m256i words = _mm512_castsi512_si256(
      _mm512_permutexvar_epi16(odd_words, _mm512_castps_si512(simd::RoundBf16x16(v))));
  if (count == kTile) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y), words);
  } else {
    _mm256_mask_storeu_epi16(y, static_cast<__mmask16>(simd::FirstLanes16(count)), words);
  }
}

// kR rows over one slice: the operands of BlockedRows / PlainRows.
template <int kR>
struct Pass {
  const uint32_t* panel;
  const uint32_t* x[kR];  // row r's input pairs at the slice start
  const float* xs[kR];    // kFp8Block: row r's input scales of the slice's blocks
  const float* ws;        // kFp8Block: the tile's weight scales of the slice's blocks
  const uint8_t* odd;     // kFp8Block: per block of the slice, its pairs in true values
  float* state[kR];       // row r's state between slices (scratch)
  bool first, last;       // the slice is the row's first / last: state from zero / to outputs
  int64_t count;          // outputs of the tile
  BF16* y[kR];            // row r's outputs of the tile (or y_f32)
  float* y_f32[kR];
};

// kFp8Block: kR rows over one slice of `blocks` 128-blocks; the state is the rows' running
// block sums (16 outputs).
template <int kR>
DSV4_TARGET_AVX512BF16 void BlockedRows(const Pass<kR>& q, int64_t blocks) {
  __m512 s[kR];
  for (int r = 0; r < kR; ++r) s[r] = q.first ? _mm512_setzero_ps() : _mm512_load_ps(q.state[r]);
  for (int64_t b = 0; b < blocks; ++b) {
    __m512 a[kR][kPairs];
    for (int r = 0; r < kR; ++r) {
      for (int p = 0; p < kPairs; ++p) a[r][p] = _mm512_setzero_ps();
    }
    for (int64_t st = b * 8; st < b * 8 + 8; ++st) {
      Step<kR>(q.panel + st * kPairs * kTile, q.x, st * 8, a);
    }
    if (__builtin_expect(q.odd[b] != 0, 0)) {
      const __m512 unshift = _mm512_set1_ps(0x1p-120f);  // exact (linear_fp8_shift.h)
      for (int p = 0; p < kPairs; ++p) {
        if ((q.odd[b] >> p & 1) == 0) continue;
        for (int r = 0; r < kR; ++r) a[r][p] = _mm512_mul_ps(a[r][p], unshift);
      }
    }
    const __m512 w = _mm512_set1_ps(q.ws[b]);
    const __m512 factor = _mm512_set1_ps(kShiftFactor);
    for (int r = 0; r < kR; ++r) {
      const __m512 part = _mm512_mul_ps(simd::ReduceLanes16(a[r]), factor);
      s[r] = _mm512_add_ps(s[r], _mm512_mul_ps(_mm512_mul_ps(part, _mm512_set1_ps(q.xs[r][b])), w));
    }
  }
  for (int r = 0; r < kR; ++r) {
    if (q.last) {
      StoreRow(s[r], q.count, q.y[r], q.y_f32[r]);
    } else {
      _mm512_store_ps(q.state[r], s[r]);
    }
  }
}

// kFp8AsBf16: kR rows over one slice of `steps` 16-value steps; the state is the rows' 8 pair
// registers of lane sums ([8][16] floats).
template <int kR>
DSV4_TARGET_AVX512BF16 void PlainRows(const Pass<kR>& q, int64_t steps) {
  __m512 a[kR][kPairs];
  for (int r = 0; r < kR; ++r) {
    for (int p = 0; p < kPairs; ++p) {
      a[r][p] = q.first ? _mm512_setzero_ps() : _mm512_load_ps(q.state[r] + p * kTile);
    }
  }
  for (int64_t st = 0; st < steps; ++st) Step<kR>(q.panel + st * kPairs * kTile, q.x, st * 8, a);
  for (int r = 0; r < kR; ++r) {
    if (q.last) {
      StoreRow(simd::ReduceLanes16(a[r]), q.count, q.y[r], q.y_f32[r]);
      continue;
    }
    for (int p = 0; p < kPairs; ++p) _mm512_store_ps(q.state[r] + p * kTile, a[r][p]);
  }
}

// The slice pass of kR rows starting at row r0.
template <bool kPlain, int kR>
DSV4_TARGET_AVX512BF16 void RunPass(const LinearCall& c, Pass<kR> q, int64_t r0, int64_t k0,
                                    int64_t k1, int64_t t0, const uint32_t* xp, float* acc) {
  const LinearWeight& w = *c.w;
  const int64_t blocks = w.in / 128;
  for (int r = 0; r < kR; ++r) {
    const int64_t row = r0 + r;
    q.x[r] = xp + row * (w.in / 2) + k0 / 2;
    q.xs[r] = kPlain ? nullptr : c.xscale + row * blocks + k0 / 128;
    q.state[r] = acc + row * (kPlain ? kPairs * kTile : kTile);
    q.y[r] = c.y_f32 != nullptr ? nullptr : c.y + row * w.out + t0;
    q.y_f32[r] = c.y_f32 != nullptr ? c.y_f32 + row * w.out + t0 : nullptr;
  }
  if constexpr (kPlain) {
    PlainRows<kR>(q, (k1 - k0) / 16);
  } else {
    BlockedRows<kR>(q, (k1 - k0) / 128);
  }
}

template <bool kPlain>
DSV4_TARGET_AVX512BF16 void Gemm(const LinearCall& c, int64_t n0, int64_t n1) {
  const LinearWeight& w = *c.w;
  const int64_t scale_cols = (w.in + 127) / 128;
  // Inputs in pair layout [rows][in/16][8] dwords.
  AlignedVector<uint32_t>& xp = c.scratch->x_pairs;
  GrowTo(xp, c.rows * w.in / 2);
  if constexpr (kPlain) {
    for (int64_t i = 0; i < c.rows * w.in; i += 16) simd::PairsFromF32(c.x + i, xp.data() + i / 2);
  } else {
    for (int64_t i = 0; i < c.rows * w.in; i += 16) {
      _mm256_store_si256(reinterpret_cast<__m256i*>(xp.data() + i / 2), ShiftedPairs16(c.x + i));
    }
  }
  AlignedVector<uint16_t>& panel_words = c.scratch->panel_bf16;
  GrowTo(panel_words, kSlice * kTile);
  uint32_t* panel = reinterpret_cast<uint32_t*>(panel_words.data());
  // Per row: kFp8Block its 16 running sums, kFp8AsBf16 its 8 pair registers of lane sums
  // (touched only when the input spans several slices).
  AlignedVector<float>& acc = c.scratch->row_sums;
  GrowTo(acc, c.rows * (kPlain ? kPairs * kTile : kTile));
  const ShiftConsts& shift = MakeShiftConsts();  // with the exact tables (computed once)
  float ws[kSlice / 128];
  uint8_t odd[kSlice / 128];
  for (int64_t t0 = n0; t0 < n1; t0 += kTile) {
    const int64_t count = std::min<int64_t>(kTile, n1 - t0);
    const uint8_t* row[kTile];
    Fp8TileRows(w, t0, count, row);
    const int64_t scale_row = (t0 / 128) * scale_cols;  // a tile never straddles 128 rows
    for (int64_t k0 = 0; k0 < w.in; k0 += kSlice) {
      const int64_t k1 = std::min(w.in, k0 + kSlice);
      if (kPlain) {
        DecodeSlice(row, w.scales + scale_row, k0, k1, shift.exact, panel);
      } else {
        DecodeSliceShifted(row, k0, k1, shift, panel, odd);
        for (int64_t b = 0; b < (k1 - k0) / 128; ++b) ws[b] = Fp8BlockScale(w, t0, k0 / 128 + b);
      }
      Pass<kRows> q3{};
      q3.panel = panel;
      q3.ws = ws;
      q3.odd = odd;
      q3.first = k0 == 0;
      q3.last = k1 == w.in;
      q3.count = count;
      int64_t r0 = 0;
      for (; r0 + kRows <= c.rows; r0 += kRows) {
        RunPass<kPlain, kRows>(c, q3, r0, k0, k1, t0, xp.data(), acc.data());
      }
      if (c.rows - r0 == 2) {
        Pass<2> q{panel, {}, {}, ws, odd, {}, q3.first, q3.last, count, {}, {}};
        RunPass<kPlain, 2>(c, q, r0, k0, k1, t0, xp.data(), acc.data());
      } else if (c.rows - r0 == 1) {
        Pass<1> q{panel, {}, {}, ws, odd, {}, q3.first, q3.last, count, {}, {}};
        RunPass<kPlain, 1>(c, q, r0, k0, k1, t0, xp.data(), acc.data());
      }
    }
  }
}

}  // namespace

bool Fp8AsBf16CallExact(const LinearCall& c, int64_t n0, int64_t n1) {
  const ExpRange x = ScanInputs(c.x, c.rows * c.w->in);
  return x.ok && Fp8AsBf16RangeExact(x, *c.w, n0, n1);
}

bool GemmKind(const LinearWeight& w) {
  return w.kind == LinearKind::kFp8Block || w.kind == LinearKind::kFp8AsBf16;
}

DSV4_TARGET_AVX512BF16 bool LinearGemmAvx512Bf16(const LinearCall& c, int64_t n0, int64_t n1) {
  const LinearWeight& w = *c.w;
  if (c.rows < kGemmMinRows || !GemmKind(w) || w.in % 128 != 0) return false;
  if (w.kind == LinearKind::kFp8AsBf16) {
    if (!Fp8AsBf16CallExact(c, n0, n1)) return false;
    Gemm<true>(c, n0, n1);
  } else {
    Gemm<false>(c, n0, n1);
  }
  return true;
}

}  // namespace dsv4::kernels::internal
