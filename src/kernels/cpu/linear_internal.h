// Internal interface between the linear front end (linear.cpp: input preparation, threading,
// ISA dispatch) and its per-ISA tile loops (linear.cpp scalar, linear_avx2.cpp,
// linear_avx512.cpp). Not part of the kernels API.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <climits>
#include <cstdint>
#include <optional>
#include <vector>

#include "core/bf16.h"
#include "core/grow.h"
#include "kernels/cpu/aligned_vector.h"
#include "kernels/cpu/per_thread.h"
#include "kernels/linear_weight.h"

namespace dsv4::kernels::internal {

// Kinds whose input is used as is (BF16 values, no activation quantisation), output BF16.
inline bool IsPlainBf16(LinearKind k) {
  return k == LinearKind::kBf16 || k == LinearKind::kFp8AsBf16;
}

// One pool thread's scratch of the linears (part of kernels::Workspace). Every tile loop
// resizes what it uses on entry; the paths of one call never hold a buffer across each other.
struct LinearThreadScratch {
  std::vector<float> weight_row;     // scalar: one decoded weight row FP32 [in]
  std::vector<uint8_t> fp4_rows;     // FP4 rows recovered from w.fp4_tiles [tile, in/2]
  std::vector<uint8_t> act_codes;    // scalar input quantiser: E4M3 codes [in]
  AlignedVector<float> panel;          // a decoded weight tile FP32 [in, tile] (MXFP4
                                       // tiles, 2+ rows: the lane sums [rows, 8, 16]; the
                                       // FMA GEMMs: a slice or k-block of the weights)
  AlignedVector<float> fp4_scales;     // the tile's FP4 weight scales FP32 [in/32, tile]
  AlignedVector<uint16_t> panel_bf16;  // VDPBF16PS: a decoded weight tile, BF16 words
  AlignedVector<uint32_t> x_pairs;     // VDPBF16PS: the input rows in pair layout
  AlignedVector<uint32_t> x_pairs_scaled;  // MXFP4 tiles, 2+ rows: the input x its scales
  AlignedVector<uint32_t> fp4_exponents;   // MXFP4 tiles, 2+ rows: a tile's scale exponents
  AlignedVector<float> row_sums;  // the GEMMs: per input row its running sums (or lanes)
                                  // between slices
  AlignedVector<float> x_split;   // the FP8 FMA GEMM: input rows, each 8-value step's even
                                  // values first [rows, in]
};

// The linears' part of kernels::Workspace.
struct LinearScratch {
  std::vector<float> values;    // prepared input FP32 [rows, in]
  std::vector<float> scales;    // its per-128 scales FP32 [rows, in/128] (quantised kinds)
  std::vector<float> promoted;  // LinearBf16InF32: the input as FP32 [rows, in]
  PerThread<LinearThreadScratch> threads;
};

// kFp4Row32: the packed codes of tile rows `rows` [count] in the checkpoint layout: pointers
// into w.codes, or rows recovered from w.fp4_tiles into *buffer.
void Fp4RowPointers(const LinearWeight& w, const int64_t* rows, int count,
                    std::vector<uint8_t>* buffer, const uint8_t** out);

// One linear call after input preparation.
struct LinearCall {
  const LinearWeight* w = nullptr;
  // [rows, in]: the E4M3 code values of the quantised input (kFp8Block, kFp4Row32,
  // kNvfp4Row16), or the FP32 input values (kBf16, kFp8AsBf16, kF32).
  const float* x = nullptr;
  const float* xscale = nullptr;  // [rows, in/128] power-of-two input scales (quantised kinds)
  int64_t rows = 0;
  BF16* y = nullptr;       // [rows, out] (every kind but kF32)
  float* y_f32 = nullptr;  // [rows, out] (kF32)
  LinearThreadScratch* scratch = nullptr;  // the running thread's
};

// Computes outputs [n0, n1) of every row. n0 must be a multiple of the ISA's tile width
// (LinearTileWidth); n1 is a multiple of it or w.out.
void LinearTilesScalar(const LinearCall& c, int64_t n0, int64_t n1);
void LinearTilesAvx2(const LinearCall& c, int64_t n0, int64_t n1);
void LinearTilesAvx512(const LinearCall& c, int64_t n0, int64_t n1);
// The AVX-512 FP32 tiles alone (no GEMM): what a BF16-valued tile outside RangesExact is
// recomputed by.
void LinearFp32TilesAvx512(const LinearCall& c, int64_t n0, int64_t n1);
// kFp4Row32, kFp8Block, kFp8AsBf16 and tiled kNvfp4Row16 through VDPBF16PS; other cases are
// passed on to LinearTilesAvx512.
void LinearTilesAvx512Bf16(const LinearCall& c, int64_t n0, int64_t n1);

// FP8 through the shifted decode (linear_fp8_shift_avx512bf16.cpp): kFp8Block outputs
// [n0, n1) for 1 to kShiftMaxRows input rows; one tile n0 of kFp8AsBf16 (in a multiple of 128,
// inputs in the exact range: Fp8AsBf16RangeExact), row[16] its weight rows (a partial tile
// repeats its last), scales its E8M0 row, xw_all the input rows' full-width BF16 pairs, all
// rows, `count` outputs.
inline constexpr int64_t kShiftMaxRows = 7;
void LinearFp8ShiftAvx512Bf16(const LinearCall& c, int64_t n0, int64_t n1);
void Fp8AsBf16ShiftTileAvx512Bf16(const LinearCall& call, const uint8_t* const* row,
                                  const uint8_t* scales, int64_t n0, const uint32_t* xw_all,
                                  int64_t count);

// kFp4Row32 or kNvfp4Row16 with w.fp4_tiles set (linear_fp4_tiles_avx512bf16.cpp).
void LinearFp4TilesAvx512Bf16(const LinearCall& c, int64_t n0, int64_t n1);
// The linear front end's row block for tiled kFp4Row32 on AVX-512 BF16 (at least): the
// folded-scale passes decode each 256-column k-block of a tile into an L1 panel once per
// block of rows. Measured (README "Benchmarks"): 64 rows against 16 at in = 4096 saves ~10%
// at 64-512 rows; 128 no better than 64 (128 rows' inputs, 16 KiB each, exceed L2).
inline constexpr int64_t kFp4RowBlock = 64;
// MXFP4 passes with the scales folded into the operands (ScaledTile, LinearFp4FmaAvx512) are
// exact while every input and weight scale lies in [2^-kFp4ScaleSpan, 2^kFp4ScaleSpan].
inline constexpr int kFp4ScaleSpan = 56;
// Whether an input scale (a float) is a power of two in that range.
inline bool Fp4XScaleInRange(float s) {
  const uint32_t bits = std::bit_cast<uint32_t>(s);
  const int e = static_cast<int>((bits >> 23) & 0xFF) - 127;
  return (bits & 0x807FFFFFu) == 0 && e >= -kFp4ScaleSpan && e <= kFp4ScaleSpan;
}

// Weights whose values are BF16 (kBf16; kF32 stored as BF16): what LinearBf16RowsAvx512Bf16
// takes.
bool Bf16RowsKind(const LinearWeight& w);
// Bf16RowsKind weights over 2+ input rows through VDPBF16PS (linear_bf16_rows_avx512bf16.cpp):
// false, computing nothing, when an input is not a BF16 value; tiles outside VDPBF16PS's
// exact range go to LinearTilesAvx512. The FP32 tiles' bits either way.
bool LinearBf16RowsAvx512Bf16(const LinearCall& c, int64_t n0, int64_t n1);

// Biased exponent range of the nonzero values seen (INT_MAX / INT_MIN when none), and
// whether every value qualified (inputs: a BF16 value).
struct ExpRange {
  int min = INT_MAX, max = INT_MIN;
  bool ok = true;
};

// The FP32 inputs [n]: each must have zero low 16 bits (a BF16 value); their exponent range
// (AVX-512, linear_bf16_rows_avx512bf16.cpp).
ExpRange ScanInputs(const float* x, int64_t n);
// Whether BF16 products of inputs and weights with these biased exponent ranges, summed over
// `in` terms, stay exact and normal (no subnormal, far below overflow): VDPBF16PS then gives
// the canonical bits, and so do FMAs (linear_bf16_rows_avx512bf16.cpp's file comment).
bool RangesExact(const ExpRange& x, const ExpRange& w, int64_t in);

// Whether VDPBF16PS computes kFp8AsBf16 outputs [n0, n1) of inputs with exponent range `x`
// exactly as the canonical FP32 order: every product is exact (BF16 x BF16), and when all
// nonzero inputs and products are multiples of at least 2^-126 (grains: x's smallest exponent
// - 7, the weights' smallest scale exponent - 9) with sums far below FP32 overflow, no value
// VDPBF16PS touches is subnormal (which it would flush) and every rounding is the canonical
// one (linear_avx512bf16.cpp; the GEMM's and the 1-4-row tiles' test).
bool Fp8AsBf16RangeExact(const ExpRange& x, const LinearWeight& w, int64_t n0, int64_t n1);

// Whether kFp8AsBf16 outputs [n0, n1) of the call's rows have only exact products and normal
// partial sums (Fp8AsBf16RangeExact over ScanInputs of all its inputs): then VDPBF16PS and FMA
// round as the canonical multiply-then-add. Needs AVX-512 BF16 (linear_gemm_avx512bf16.cpp).
bool Fp8AsBf16CallExact(const LinearCall& c, int64_t n0, int64_t n1);

// FP8 weights (kFp8Block, kFp8AsBf16): what LinearGemmAvx512Bf16 takes.
bool GemmKind(const LinearWeight& w);
// Row counts from which LinearGemmAvx512Bf16 runs, and the rows per call it is given (the
// linear front end's row block for these calls: its inputs are sliced, so many rows share
// each decoded weight slice).
inline constexpr int64_t kGemmMinRows = 8;
inline constexpr int64_t kGemmRowBlock = 256;
// GemmKind weights over kGemmMinRows+ input rows through register-blocked VDPBF16PS tiles
// (linear_gemm_avx512bf16.cpp): false, computing nothing, when it does not take the call
// (fewer rows, in not a multiple of 128, kFp8AsBf16 inputs outside the exact range). The
// canonical bits either way; with c.y_f32 set instead of c.y, the FP32 results before the
// BF16 rounding (what the tests compare with QuantOutput / Dot8).
bool LinearGemmAvx512Bf16(const LinearCall& c, int64_t n0, int64_t n1);

// kFp8Block (and on AVX-512 BF16 CPUs kFp8AsBf16 and BF16-valued weights) over kGemmMinRows+
// input rows through FP32 FMAs on an FP32 weight panel (linear_gemm_avx512.cpp, AVX-512):
// false, computing nothing, when it does not take the call (fewer rows, another kind, in not
// a multiple of 128 (BF16-valued: of 8), kFp8AsBf16 inputs outside the exact range, BF16-valued
// weights with an input that is not a BF16 value). The canonical bits; with c.y_f32 set instead
// of c.y, the FP32 results before the BF16 rounding.
bool LinearGemmAvx512(const LinearCall& c, int64_t n0, int64_t n1);
// kFp4Row32 in the tile layout over kFp4FmaMinRows+ input rows through FP32 FMAs on an FP32
// weight panel (linear_fp4_fma_avx512.cpp, AVX-512; called on AVX-512 BF16 CPUs): false,
// computing nothing, when it does not take the call (fewer rows, no tiles, an input scale
// outside its folded range); a tile with a weight scale outside it runs through
// LinearFp4TilesAvx512Bf16. The canonical bits; with c.y_f32 set instead of c.y, the FP32
// results before the rounding.
bool LinearFp4FmaAvx512(const LinearCall& c, int64_t n0, int64_t n1);
inline constexpr int64_t kFp4FmaMinRows = 5;
// The chunk scales of tile t0 (kFp4Row32) as the tile passes read them: wsp [8 pairs][in/32]
// [2] FP32 (chunk c of pair p = row p's scale, row p + 8's: the 64-bit pattern a pair
// register's lanes alternate over), each E8M0 code << 23, padding rows 1. True when every
// code lies within 127 +- kFp4ScaleSpan, where that pattern is the scale's value (no special
// code); else the caller decodes the codes (linear_fp4_tiles_avx512bf16.cpp's TilePairScales).
bool Fp4PairScalesInRange(const LinearWeight& w, int64_t t0, float* wsp);
// Rows per call the front end gives LinearFp4FmaAvx512: their inputs, 8 B per value (each
// FP32 value twice), within 1 MiB.
int64_t Fp4FmaRowBlock(int64_t in);
// Rows per call the front end gives LinearGemmAvx512: the rows' FP32 inputs (4 B per value,
// read as they are) stay within about 1 MiB, in L2 while every tile passes over them
// (x 4 or / 2-4 measured slower at 512 rows, README).
int64_t FmaGemmRowBlock(int64_t in);
// Whether an AVX-512 BF16 CPU runs its GEMMs on FMAs (LinearGemmAvx512, LinearFp4FmaAvx512)
// rather than VDPBF16PS (LinearGemmAvx512Bf16 and the tile paths): measured once, the first
// time it is asked, by timing both instructions' multiply-add rates (FMAs when they are at
// least 1.25x VDPBF16PS's).
// Both give the same bits; the choice changes speed only.
bool FmaGemmPreferred();
// Forces the choice (tests cover both paths on any CPU); std::nullopt restores the probe's.
void SetFmaGemmPreferredForTesting(std::optional<bool> fma);

// Whether this CPU's VDPBF16PS computes acc + a1*b1 rounded, then + a0*b0 rounded (RNE), on
// random operands with exact products: the property the BF16 kernels rely on. Requires
// AVX512_BF16 support.
bool Bf16DotRoundsSequentially();

// The canonical FP4 (kFp4Row32) output before BF16 rounding, scalar. wrow / xrow: code values
// [in] of the weight row and the FP8-quantised input; xscale [in/128] and wscale [in/32] (E8M0
// codes) their scales. Element k belongs to lane l = k mod 8. Per 32-chunk c each lane sums
// its 4 products in ascending k from +0 (exactly: E2M1 x E4M3 products are multiples of 2^-10
// below 2^12, so any order gives the same bits), then lane[l] += part * s_c with
// s_c = xscale[c/4] * wscale[c] (formed first; powers of two), chunks in ascending order;
// finally the lanes combine as ((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7)). Keeping the chunk scales
// inside the lanes lets SIMD paths reduce once per output instead of once per 32 inputs.
float Fp4LaneScaledDot(const float* wrow, const float* xrow, const float* xscale,
                       const uint8_t* wscale, int64_t in);

// The canonical NVFP4 (kNvfp4Row16) output before BF16 rounding, scalar; the same lanes and
// 32-chunks as Fp4LaneScaledDot. wscale: E4M3 codes [in/16]; global: weight_scale_2. Per
// chunk c and lane l (elements k = 32c + l + 8j, j = 0..3: j < 2 in 16-block 2c, j >= 2 in
// 2c + 1): p0 = sum of the j = 0, 1 products and p1 of j = 2, 3 (exact, from +0),
// b = fp32(e4m3(wscale[2c + i])) * global (rounded), part = p0 * b0 + p1 * b1 (no FMA), then
// lane[l] += part * xscale[c/4]; chunks ascending; lanes combine as in Fp4LaneScaledDot.
// For the lossless MXFP4 -> NVFP4 transcode (b0 = b1 = 2^e, spec §11.5) every step before
// the lane add is exact, so the result has the bits of Fp4LaneScaledDot on the MXFP4 weight.
float Nvfp4LaneScaledDot(const float* wrow, const float* xrow, const float* xscale,
                         const uint8_t* wscale, float global, int64_t in);

// One quantised (kFp8Block, kFp4Row32, kNvfp4Row16) output before BF16 rounding, scalar:
// the canonical order every ISA reproduces. wrow: weight row n decoded to code values [in];
// xrow, xscale: the prepared input row (E4M3 code values, per-128 scales).
float QuantOutput(const LinearWeight& w, int64_t n, const float* wrow, const float* xrow,
                  const float* xscale);

// E4M3ToF32 of all 256 codes (NaN for the two NaN codes).
const std::array<float, 256>& E4M3Table();

// One input row quantised for the FP8/FP4 linears, like ActQuantFp8 per 128 followed by
// E4M3ToF32 of each code, with AVX-512 (same bits): x BF16 [in] -> values FP32 [in] (the E4M3
// code values), scales FP32 [in/128]. in must be a multiple of 128.
void ActQuantValuesAvx512(const BF16* x, int64_t in, float* values, float* scales);

inline constexpr int64_t kAvx2Tile = 8;     // outputs per AVX2 tile (8 accumulators)
inline constexpr int64_t kAvx512Tile = 16;  // outputs per AVX-512 tile (8 two-half registers)

// E8M0ToF32 for all 256 codes, at compile time: 2^(b-127) (b = 0 is the FP32 subnormal
// 2^-127), quiet NaN for 255. Inline so that the hot loops index it directly.
inline constexpr std::array<float, 256> kE8M0Values = [] {
  std::array<float, 256> t{};
  for (uint32_t b = 0; b < 256; ++b) {
    const uint32_t bits = b == 0 ? 0x00400000u : b == 255 ? 0x7FC00000u : b << 23;
    t[b] = std::bit_cast<float>(bits);
  }
  return t;
}();
inline const float* E8M0Table() { return kE8M0Values.data(); }

// kFp8Block and kFp8AsBf16: the code rows of the kAvx512Tile-output tile at t0 with `count`
// outputs, a partial tile repeating its last row.
inline void Fp8TileRows(const LinearWeight& w, int64_t t0, int64_t count, const uint8_t** row) {
  for (int64_t i = 0; i < kAvx512Tile; ++i) row[i] = w.codes + (t0 + std::min(i, count - 1)) * w.in;
}

// kFp8Block: the weight scale of output n's 128-block b (its FP32 scale, or the E8M0 one).
inline float Fp8BlockScale(const LinearWeight& w, int64_t n, int64_t b) {
  const int64_t tile = (n / 128) * ((w.in + 127) / 128) + b;
  return w.scales_f32 != nullptr ? w.scales_f32[tile] : E8M0Table()[w.scales[tile]];
}

}  // namespace dsv4::kernels::internal
