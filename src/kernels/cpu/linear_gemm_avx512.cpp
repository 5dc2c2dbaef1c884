// FP8 and BF16-valued linears over many input rows through FP32 FMAs (AVX-512): the weights
// decoded once per slice into an FP32 panel for a whole row block, every row's input read as
// is. kFp8Block on the AVX-512 ISA, and kFp8Block, kFp8AsBf16 and BF16-valued weights
// (Bf16RowsKind: the head, compressors, router) on AVX-512 BF16 CPUs whose FMAs outrun
// VDPBF16PS (FmaGemmPreferred: on an Intel Xeon of the Sapphire Rapids class VDPBF16PS issues
// once per 2 cycles, 32 multiply-adds, against two FMAs of 16 per cycle).
//
// Schedule per call (outputs [n0, n1) of one thread, up to FmaGemmRowBlock rows): per tile of
// 16 outputs, the weights in slices of kFmaSlice values (the plain passes: twice that), each
// decoded once (E4M3 -> FP16 pattern -> FP32, value x 2^-8, exact: simd::E4M3x16's; BF16
// words << 16) into a 16 KiB (32 KiB) L1 panel of 8 registers per 8-input step s. The plain
// passes use the pair layout: register p holds outputs p (lanes 0-7) and p + 8 (lanes 8-15)
// at inputs 8s .. 8s + 7, 8 panel loads and 3 broadcasts of 8 input values per 24 FMAs.
// kFp8Block, which combines its lanes once per 128-block, uses the split layout
// (DecodeSliceSplit): register 4h + j holds outputs 4j .. 4j + 3 at the step's even (h = 0) or
// odd (h = 1) inputs, so the combine's first level adds registers (ReduceSplit: 6 shuffles
// and 7 adds per row and block against ReduceLanes16's 15 and 7), for 2 broadcasts of 4
// input values per row instead of 1 of 8 (the input rows reordered once per call,
// SplitInputs). Rows run kRows at a time over the slice (3 x 8 accumulators). Between slices
// a row keeps its state in scratch (kFp8Block its 16 running block sums, the others their 8
// pair registers); after its last slice the outputs are rounded and stored.
//
// Exactness (LinearTilesScalar's canonical order): lane l of an output adds the products of
// inputs k = l mod 8 in ascending k, from +0 per 128-block. E4M3 x E4M3 products (x 2^-8)
// are exact in FP32 and at least 2^-26, so each FMA rounds as the multiply-then-add does.
// Per block the lanes combine in the canonical tree (simd::ReduceLanes16's), then
// acc += ((partial x 256) * xscale) * wscale in block order, from +0: the same operations as
// linear_tiles.inc's RowTile. kFp8AsBf16: the panel holds code x scale (exact BF16 values),
// each lane runs over the whole input (Dot8's order), taken only when Fp8AsBf16CallExact
// shows every product exact and no partial sum subnormal. BF16-valued weights: the same
// order over BF16 inputs (ScanInputs), each tile kept only when RangesExact shows its
// products exact (none below the normal range), else redone by the FP32 tiles.
#include <algorithm>
#include <atomic>
#include <chrono>

#include "core/grow.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/linear_internal.h"
#include "kernels/cpu/simd.h"  // its pragmas cover every SIMD function defined below

namespace dsv4::kernels::internal {
namespace {

constexpr int kTile = static_cast<int>(kAvx512Tile);  // outputs per tile
constexpr int kPairs = kTile / 2;
constexpr int kRows = 3;            // input rows per pass over a slice: 24 accumulators
constexpr int64_t kFmaSlice = 256;  // inputs per panel slice: 16 outputs x 256 FP32 = 16 KiB

// 64 E4M3 codes -> FP32 values x 2^-8 (simd::E4M3x16's FP16 pattern, 32 codes per
// widening): out[q] the 16 codes of 128-bit lane q.
DSV4_TARGET_AVX512 inline void E4M3x64(__m512i codes, __m512* out) {
  const __m512i fp16_mask = _mm512_set1_epi16(static_cast<int16_t>(0xBFFF));
#pragma GCC unroll 2
  for (int half = 0; half < 2; ++half) {
    const __m256i c =
        half == 0 ? _mm512_castsi512_si256(codes) : _mm512_extracti64x4_epi64(codes, 1);
    const __m512i h = _mm512_and_si512(_mm512_slli_epi16(_mm512_cvtepi8_epi16(c), 7), fp16_mask);
    out[2 * half] = _mm512_cvtph_ps(_mm512_castsi512_si256(h));
    out[2 * half + 1] = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1));
  }
}

// kFp8AsBf16: slice [k0, k1) of the tile's 16 weight rows (E4M3 codes; scales: the tile's
// row of E8M0 codes) -> panel [(k1-k0)/8][8][16] FP32 in pair layout, the dequantised values
// code x scale (exact: BF16 normals, Fp8AsBf16ScalesOk). 64 columns of a pair (rows p, p + 8)
// at a time: two 64-byte loads, their 8-byte steps interleaved (128-bit lane i of lo: steps
// 2i, of hi: steps 2i + 1), then E4M3x64: 4.5 operations per 16 weights against 8 for
// simd::E4M3x8x2 per step (its two 8-byte loads merged, its row pointers spilled).
DSV4_TARGET_AVX512 void DecodeSlice(const uint8_t* const* row, const uint8_t* scales,
                                    int64_t k0, int64_t k1, float* panel) {
  for (int64_t k = k0; k < k1; k += 64) {
    float* dst = panel + ((k - k0) / 8) * kPairs * kTile;
    const __m512 f = _mm512_set1_ps(E8M0Table()[scales[k / 128]] * simd::kE4M3Fp16Unscale);
#pragma GCC unroll 8
    for (int p = 0; p < kPairs; ++p) {
      const __m512i a = _mm512_loadu_si512(row[p] + k);
      const __m512i b = _mm512_loadu_si512(row[p + 8] + k);
      const __m512i steps[2] = {_mm512_unpacklo_epi64(a, b), _mm512_unpackhi_epi64(a, b)};
#pragma GCC unroll 2
      for (int odd = 0; odd < 2; ++odd) {
        __m512 v[4];  // lane q: step 2q + odd
        E4M3x64(steps[odd], v);
#pragma GCC unroll 4
        for (int q = 0; q < 4; ++q) {
          _mm512_store_ps(dst + ((2 * q + odd) * kPairs + p) * kTile, _mm512_mul_ps(v[q], f));
        }
      }
    }
  }
}

// The nonzero magnitudes of a tile's BF16 weights seen so far (words, sign cleared).
struct Bf16Magnitudes {
  __m256i min, max;
  __mmask16 any = 0;
};

// BF16-valued weights (Bf16RowsKind): slice [k0, k1) of the tile's 16 rows -> panel
// [(k1-k0)/8][8][16] FP32 (each word << 16, exact), the magnitudes folded into *mags. The
// rows one slice ahead are prefetched (as LinearBf16RowsAvx512Bf16's).
DSV4_TARGET_AVX512 void DecodeSliceBf16(const uint16_t* const* row, int64_t k0, int64_t k1,
                                        float* panel, Bf16Magnitudes* mags) {
  const __m256i abs_mask = _mm256_set1_epi16(0x7FFF);
  for (int64_t k = k0; k < k1; k += 8) {
    float* dst = panel + ((k - k0) / 8) * kPairs * kTile;
#pragma GCC unroll 8
    for (int p = 0; p < kPairs; ++p) {
      if (k % 32 == 0) {
        _mm_prefetch(reinterpret_cast<const char*>(row[p] + k + kFmaSlice), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(row[p + 8] + k + kFmaSlice), _MM_HINT_T0);
      }
      const __m256i both = _mm256_inserti128_si256(
          _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row[p] + k))),
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(row[p + 8] + k)), 1);
      const __m256i mag = _mm256_and_si256(both, abs_mask);
      const __mmask16 nz = _mm256_test_epi16_mask(both, abs_mask);
      mags->any |= nz;
      mags->min = _mm256_mask_min_epu16(mags->min, nz, mags->min, mag);
      mags->max = _mm256_max_epu16(mags->max, mag);
      _mm512_store_ps(dst + p * kTile,
                      _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(both), 16)));
    }
  }
}

// The tile's weight exponent range (RangesExact's input) from its magnitudes.
DSV4_TARGET_AVX512 ExpRange MagnitudeRange(const Bf16Magnitudes& m) {
  ExpRange r;
  if (m.any == 0) return r;
  alignas(32) uint16_t lo[16], hi[16];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lo), m.min);
  _mm256_store_si256(reinterpret_cast<__m256i*>(hi), m.max);
  r.min = *std::min_element(lo, lo + 16) >> 7;
  r.max = *std::max_element(hi, hi + 16) >> 7;
  return r;
}

// kR rows over `steps` 8-value steps of the panel (x[r]: row r's inputs at its first step):
// a[r][p] += the products of pair register p (kFp8AsBf16 over the whole input, Dot8's order;
// kFp8Block per 128-block, BlockedRows).
template <int kR>
DSV4_TARGET_AVX512 void PlainRows(const float* panel, const float* const* x, int64_t steps,
                                  __m512 (*a)[kPairs]) {
  for (int64_t st = 0; st < steps; ++st) {
    const float* step = panel + st * kPairs * kTile;
    __m512 xb[kR];
#pragma GCC unroll 3
    for (int r = 0; r < kR; ++r) xb[r] = _mm512_broadcast_f32x8(_mm256_loadu_ps(x[r] + st * 8));
#pragma GCC unroll 8
    for (int p = 0; p < kPairs; ++p) {
      __m512 w = _mm512_load_ps(step + p * kTile);
      // One load per panel register: GCC would fold it into each of the kR FMAs, and
      // 27 loads per 24 FMAs then bound the loop (two 64-byte loads per cycle).
      __asm__("" : "+v"(w));
#pragma GCC unroll 3
      for (int r = 0; r < kR; ++r) a[r][p] = _mm512_fmadd_ps(w, xb[r], a[r][p]);
    }
  }
}

// kFp8Block: slice [k0, k1) of the tile's 16 weight rows (E4M3 codes) -> panel
// [(k1-k0)/8][8][16] of the values x 2^-8 in the split layout: register 4h + j of step s holds
// outputs 4j .. 4j + 3 (4 lanes each, lane i: output 4j + i / 4) at inputs 8s + 2(i % 4) + h,
// the step's even (h = 0) or odd (h = 1) inputs. 64 columns of 4 outputs at a time: four
// 64-byte loads, a byte shuffle putting each 8-byte step's even codes first, 32- and 64-bit
// unpacks gathering the 4 outputs' halves of a step into one 128-bit lane, then E4M3x64
// (5 operations per 16 weights).
DSV4_TARGET_AVX512 void DecodeSliceSplit(const uint8_t* const* row, int64_t k0, int64_t k1,
                                         float* panel) {
  const __m512i evens_first = _mm512_broadcast_i32x4(
      _mm_setr_epi8(0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15));
  for (int64_t k = k0; k < k1; k += 64) {
    float* dst = panel + ((k - k0) / 8) * kPairs * kTile;
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      __m512i r[4];
#pragma GCC unroll 4
      for (int o = 0; o < 4; ++o) {
        r[o] = _mm512_shuffle_epi8(_mm512_loadu_si512(row[4 * j + o] + k), evens_first);
      }
      // 128-bit lane q of r[o]: dwords [s even, s odd, s + 1 even, s + 1 odd], s = 2q.
      const __m512i t0 = _mm512_unpacklo_epi32(r[0], r[1]), t1 = _mm512_unpackhi_epi32(r[0], r[1]);
      const __m512i t2 = _mm512_unpacklo_epi32(r[2], r[3]), t3 = _mm512_unpackhi_epi32(r[2], r[3]);
      // u[2d + h], lane q: the 4 outputs' codes of step 2q + d, half h.
      const __m512i u[4] = {_mm512_unpacklo_epi64(t0, t2), _mm512_unpackhi_epi64(t0, t2),
                            _mm512_unpacklo_epi64(t1, t3), _mm512_unpackhi_epi64(t1, t3)};
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) {
        const int d = i / 2, h = i % 2;
        __m512 v[4];  // lane q: step 2q + d
        E4M3x64(u[i], v);
#pragma GCC unroll 4
        for (int q = 0; q < 4; ++q) {
          _mm512_store_ps(dst + ((2 * q + d) * kPairs + 4 * h + j) * kTile, v[q]);
        }
      }
    }
  }
}

// Input rows [rows][in] -> the split layout's order: each 8-value step's even values, then
// its odd ones (DecodeSliceSplit's registers 4h + j read half h of a step).
DSV4_TARGET_AVX512 void SplitInputs(const float* x, int64_t n, float* out) {
  const __m512i order = _mm512_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15);
  for (int64_t i = 0; i < n; i += 16) {
    _mm512_store_ps(out + i, _mm512_permutexvar_ps(order, _mm512_loadu_ps(x + i)));
  }
}

// The canonical combine of one row's split-layout lanes (a[4h + j]: outputs 4j .. 4j + 3,
// lanes 2(i % 4) + h): level 1 pairs lanes 2m and 2m + 1 across the halves (a[j] + a[4 + j]),
// levels 2 and 3 within 128-bit lanes (Hadd512), ReduceLanes16's tree with 6 shuffles instead
// of 15. Result lane 4q + m holds output 4m + q (kSplitOrder puts them back).
DSV4_TARGET_AVX512 inline __m512 ReduceSplit(const __m512* a) {
  const __m512 l0 = _mm512_add_ps(a[0], a[4]), l1 = _mm512_add_ps(a[1], a[5]);
  const __m512 l2 = _mm512_add_ps(a[2], a[6]), l3 = _mm512_add_ps(a[3], a[7]);
  return simd::Hadd512(simd::Hadd512(l0, l1), simd::Hadd512(l2, l3));
}

// kR rows over one slice of `blocks` 128-blocks of a split-layout panel: s[r] += the blocks'
// scaled partials (in ReduceSplit's lane order). x[r]: row r's split inputs at the slice
// start; xs[r]: its scales of the slice's blocks; ws: the tile's weight scales of those blocks.
// Per step 8 panel loads and 2 x kR broadcasts of 4 input values per 8 x kR FMAs.
template <int kR>
DSV4_TARGET_AVX512 void BlockedRows(const float* panel, const float* const* x,
                                    const float* const* xs, const float* ws, int64_t blocks,
                                    __m512* s) {
  const __m512 unscale = _mm512_set1_ps(simd::kE4M3Fp16Unscale);
  for (int64_t b = 0; b < blocks; ++b) {
    __m512 a[kR][kPairs];
#pragma GCC unroll 3
    for (int r = 0; r < kR; ++r) {
#pragma GCC unroll 8
      for (int p = 0; p < kPairs; ++p) a[r][p] = _mm512_setzero_ps();
    }
    const float* pb = panel + b * 16 * kPairs * kTile;
    for (int64_t st = 0; st < 16; ++st) {
      const float* step = pb + st * kPairs * kTile;
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) {
        __m512 xb[kR];
#pragma GCC unroll 3
        for (int r = 0; r < kR; ++r) {
          xb[r] = _mm512_broadcast_f32x4(_mm_loadu_ps(x[r] + b * 128 + st * 8 + 4 * h));
        }
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) {
          __m512 w = _mm512_load_ps(step + (4 * h + j) * kTile);
          __asm__("" : "+v"(w));  // one load per panel register (PlainRows)
#pragma GCC unroll 3
          for (int r = 0; r < kR; ++r) a[r][4 * h + j] = _mm512_fmadd_ps(w, xb[r], a[r][4 * h + j]);
        }
      }
    }
    const __m512 w = _mm512_set1_ps(ws[b]);
#pragma GCC unroll 3
    for (int r = 0; r < kR; ++r) {
      const __m512 part = _mm512_mul_ps(ReduceSplit(a[r]), unscale);
      s[r] = _mm512_add_ps(s[r], _mm512_mul_ps(_mm512_mul_ps(part, _mm512_set1_ps(xs[r][b])), w));
    }
  }
}

// 16 results of one row -> its outputs, the first `count`: BF16 (RNE, F32ToBf16's bits) at
// y, or FP32 at y_f32 (tests).
DSV4_TARGET_AVX512 inline void StoreRow(__m512 v, int64_t count, BF16* y, float* y_f32) {
  if (y_f32 != nullptr) {
    _mm512_mask_storeu_ps(y_f32, simd::FirstLanes16(count), v);
    return;
  }
  alignas(64) float out[kTile];
  _mm512_store_ps(out, v);
  for (int64_t i = 0; i < count; ++i) y[i] = F32ToBf16(out[i]);
}

// The pass of kR rows from row r0 over slice [k0, k1) of tile t0. Between slices a row's
// state is in acc: kFp8Block its 16 running block sums, kFp8AsBf16 its 8 pair registers.
template <bool kPlain, int kR>
DSV4_TARGET_AVX512 void RunPass(const LinearCall& c, const float* panel, const float* ws,
                                const float* xsplit, int64_t r0, int64_t k0, int64_t k1,
                                int64_t t0, int64_t count, float* acc) {
  const LinearWeight& w = *c.w;
  if constexpr (kPlain) {
    // Fully unrolled, so the accumulators stay registers from the state's loads to its stores
    // (as linear_fp4_fma_avx512.cpp's RunPass).
    __m512 a[kR][kPairs];
    const float* x[kR];
#pragma GCC unroll 3
    for (int r = 0; r < kR; ++r) {
      x[r] = c.x + (r0 + r) * w.in + k0;
      const float* st = acc + (r0 + r) * kPairs * kTile;
#pragma GCC unroll 8
      for (int p = 0; p < kPairs; ++p) {
        a[r][p] = k0 == 0 ? _mm512_setzero_ps() : _mm512_load_ps(st + p * kTile);
      }
    }
    PlainRows<kR>(panel, x, (k1 - k0) / 8, a);
#pragma GCC unroll 3
    for (int r = 0; r < kR; ++r) {
      if (k1 == w.in) {
        const int64_t at = (r0 + r) * w.out + t0;
        StoreRow(simd::ReduceLanes16(a[r]), count, c.y_f32 != nullptr ? nullptr : c.y + at,
                 c.y_f32 != nullptr ? c.y_f32 + at : nullptr);
      } else {
        float* st = acc + (r0 + r) * kPairs * kTile;
#pragma GCC unroll 8
        for (int p = 0; p < kPairs; ++p) _mm512_store_ps(st + p * kTile, a[r][p]);
      }
    }
    return;
  }
  const int64_t blocks = w.in / 128;
  const float* x[kR];
  const float* xs[kR];
  __m512 s[kR];
#pragma GCC unroll 3
  for (int r = 0; r < kR; ++r) {
    x[r] = xsplit + (r0 + r) * w.in + k0;
    xs[r] = c.xscale + (r0 + r) * blocks + k0 / 128;
    s[r] = k0 == 0 ? _mm512_setzero_ps() : _mm512_load_ps(acc + (r0 + r) * kTile);
  }
  BlockedRows<kR>(panel, x, xs, ws, (k1 - k0) / 128, s);
  // ReduceSplit's lane 4q + m holds output 4m + q.
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
#pragma GCC unroll 3
  for (int r = 0; r < kR; ++r) {
    if (k1 == w.in) {
      const int64_t at = (r0 + r) * w.out + t0;
      StoreRow(_mm512_permutexvar_ps(order, s[r]), count,
               c.y_f32 != nullptr ? nullptr : c.y + at,
               c.y_f32 != nullptr ? c.y_f32 + at : nullptr);
    } else {
      _mm512_store_ps(acc + (r0 + r) * kTile, s[r]);
    }
  }
}

}  // namespace

namespace {

// The weights a GEMM reads: kFp8Block, kFp8AsBf16 (kPlain passes) or BF16 values (kPlain
// passes, each tile kept only where RangesExact holds; else the FP32 tiles redo it).
enum class Src { kFp8Block, kFp8AsBf16, kBf16 };

template <Src kSrc>
DSV4_TARGET_AVX512 void Gemm(const LinearCall& c, int64_t n0, int64_t n1, const ExpRange& xr) {
  constexpr bool kPlain = kSrc != Src::kFp8Block;
  const LinearWeight& w = *c.w;
  AlignedVector<float>& panel = c.scratch->panel;
  // The plain passes keep 8 pair registers per row between slices: 512-value slices (a 32 KiB
  // panel) halve that traffic (wo_a 1024x4096 at 128 rows 4,554-4,826 -> 3,963-4,097 us, the
  // head slice at 64 rows 18.7 -> 16.7-17.1 ms); kFp8Block keeps only its block sums.
  constexpr int64_t kSlice = kPlain ? 2 * kFmaSlice : kFmaSlice;
  GrowTo(panel, kSlice * kTile);
  // Per row its state between slices (touched only when the input spans several slices).
  AlignedVector<float>& acc = c.scratch->row_sums;
  GrowTo(acc, c.rows * (kPlain ? kPairs * kTile : kTile));
  float ws[kSlice / 128];
  // kFp8Block: the input rows in the split layout's order, once per call.
  const float* xsplit = nullptr;
  if constexpr (!kPlain) {
    AlignedVector<float>& split = c.scratch->x_split;
    GrowTo(split, c.rows * w.in);
    SplitInputs(c.x, c.rows * w.in, split.data());
    xsplit = split.data();
  }
  for (int64_t t0 = n0; t0 < n1; t0 += kTile) {
    const int64_t count = std::min<int64_t>(kTile, n1 - t0);
    const uint8_t* row[kTile];
    const uint16_t* row_bf16[kTile];
    Bf16Magnitudes mags{_mm256_set1_epi16(0x7FFF), _mm256_setzero_si256()};
    if constexpr (kSrc == Src::kBf16) {
      const uint16_t* weights = reinterpret_cast<const uint16_t*>(w.bf16);
      for (int i = 0; i < kTile; ++i) {  // a partial tile repeats its last row
        row_bf16[i] = weights + (t0 + std::min<int64_t>(i, count - 1)) * w.in;
      }
    } else {
      Fp8TileRows(w, t0, count, row);
    }
    for (int64_t k0 = 0; k0 < w.in; k0 += kSlice) {
      const int64_t k1 = std::min(w.in, k0 + kSlice);
      if constexpr (kSrc == Src::kBf16) {
        DecodeSliceBf16(row_bf16, k0, k1, panel.data(), &mags);
      } else if constexpr (kPlain) {
        DecodeSlice(row, w.scales + (t0 / 128) * ((w.in + 127) / 128), k0, k1, panel.data());
      } else {
        DecodeSliceSplit(row, k0, k1, panel.data());
      }
      if (!kPlain) {
        for (int64_t b = 0; b < (k1 - k0) / 128; ++b) ws[b] = Fp8BlockScale(w, t0, k0 / 128 + b);
      }
      int64_t r0 = 0;
      for (; r0 + kRows <= c.rows; r0 += kRows) {
        RunPass<kPlain, kRows>(c, panel.data(), ws, xsplit, r0, k0, k1, t0, count, acc.data());
      }
      if (c.rows - r0 == 2) {
        RunPass<kPlain, 2>(c, panel.data(), ws, xsplit, r0, k0, k1, t0, count, acc.data());
      } else if (c.rows - r0 == 1) {
        RunPass<kPlain, 1>(c, panel.data(), ws, xsplit, r0, k0, k1, t0, count, acc.data());
      }
    }
    if (kSrc == Src::kBf16 && !RangesExact(xr, MagnitudeRange(mags), w.in)) {
      LinearFp32TilesAvx512(c, t0, t0 + count);  // the FP32 tiles: the same bits
    }
  }
}

}  // namespace

DSV4_TARGET_AVX512 bool LinearGemmAvx512(const LinearCall& c, int64_t n0, int64_t n1) {
  const LinearWeight& w = *c.w;
  if (c.rows < kGemmMinRows) return false;
  if (w.kind == LinearKind::kFp8Block && w.in % 128 == 0) {
    Gemm<Src::kFp8Block>(c, n0, n1, ExpRange{});
    return true;
  }
  // The rest on AVX-512 BF16 CPUs (the range scans are compiled for them), where the products
  // are exact: FMA then rounds as the multiply-then-add. kFp8AsBf16 where Fp8AsBf16CallExact
  // shows it; BF16-valued weights where every input is a BF16 value (ScanInputs), each tile
  // checked by RangesExact after it ran.
  if (ActiveIsa() != Isa::kAvx512Bf16) return false;
  if (w.kind == LinearKind::kFp8AsBf16 && w.in % 128 == 0 && Fp8AsBf16CallExact(c, n0, n1)) {
    Gemm<Src::kFp8AsBf16>(c, n0, n1, ExpRange{});
    return true;
  }
  if (Bf16RowsKind(w) && w.in % 8 == 0) {
    const ExpRange xr = ScanInputs(c.x, c.rows * w.in);
    if (!xr.ok) return false;
    Gemm<Src::kBf16>(c, n0, n1, xr);
    return true;
  }
  return false;
}

int64_t FmaGemmRowBlock(int64_t in) {
  return std::clamp<int64_t>((int64_t{1} << 16) / std::max<int64_t>(in / 4, 1) / kRows * kRows,
                             8 * kRows, 32 * kRows);
}

namespace {

// Multiply-adds per nanosecond of 12 independent chains of each instruction (the best of 3
// runs of 2,048 steps: about 10-50 us each), then FMAs if they are 1.25x VDPBF16PS or more.
template <bool kFma>
DSV4_TARGET_AVX512BF16 double MacsPerNs() {
  constexpr int kChains = 12, kSteps = 2048;
  double best = 0;
  for (int run = 0; run < 3; ++run) {
    __m512 a[kChains];
    for (int i = 0; i < kChains; ++i) a[i] = _mm512_set1_ps(static_cast<float>(i));
    __m512 x = _mm512_set1_ps(1.0f / 1024), y = _mm512_set1_ps(1.0f / 1024);
    const auto t0 = std::chrono::steady_clock::now();
    for (int s = 0; s < kSteps; ++s) {
#pragma GCC unroll 12
      for (int i = 0; i < kChains; ++i) {
        if constexpr (kFma) {
          a[i] = _mm512_fmadd_ps(x, y, a[i]);
        } else {
          a[i] = _mm512_dpbf16_ps(a[i], reinterpret_cast<__m512bh>(_mm512_castps_si512(x)),
                                  reinterpret_cast<__m512bh>(_mm512_castps_si512(y)));
        }
      }
      __asm__ volatile("" : "+v"(x), "+v"(y));
    }
    const double ns = std::chrono::duration<double, std::nano>(
                          std::chrono::steady_clock::now() - t0).count();
    __m512 sum = a[0];
    for (int i = 1; i < kChains; ++i) sum = _mm512_add_ps(sum, a[i]);
    volatile float sink = _mm512_reduce_add_ps(sum);
    (void)sink;
    const double macs = double(kChains) * kSteps * (kFma ? 16 : 32);
    if (ns > 0) best = std::max(best, macs / ns);
  }
  return best;
}

bool ProbeFmaGemm() {
  if (!IsaSupported(Isa::kAvx512Bf16)) return false;
  MacsPerNs<true>();  // warm-up: the vector units' power-up
  return MacsPerNs<true>() >= 1.25 * MacsPerNs<false>();
}

std::atomic<int>& FmaGemmOverride() {  // -1: the probe's choice; 0 / 1: forced
  static std::atomic<int> slot{-1};
  return slot;
}

}  // namespace

bool FmaGemmPreferred() {
  const int forced = FmaGemmOverride().load(std::memory_order_relaxed);
  if (forced >= 0) return forced == 1;
  static const bool fma = ProbeFmaGemm();
  return fma;
}

void SetFmaGemmPreferredForTesting(std::optional<bool> fma) {
  FmaGemmOverride().store(fma.has_value() ? (*fma ? 1 : 0) : -1, std::memory_order_relaxed);
}

}  // namespace dsv4::kernels::internal
