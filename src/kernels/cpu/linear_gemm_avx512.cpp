// FP8 and BF16-valued linears over many input rows through FP32 FMAs (AVX-512): the weights
// decoded once per slice into an FP32 panel for a whole row block, every row's input read as
// is. kFp8Block on the AVX-512 ISA, and kFp8Block, kFp8AsBf16 and BF16-valued weights
// (Bf16RowsKind: the head, compressors, router) on AVX-512 BF16 CPUs whose FMAs outrun
// VDPBF16PS (FmaGemmPreferred: on an Intel Xeon of the Sapphire Rapids class VDPBF16PS issues
// once per 2 cycles, 32 multiply-adds, against two FMAs of 16 per cycle).
//
// Schedule per call (outputs [n0, n1) of one thread, up to FmaGemmRowBlock rows): per tile of
// 16 outputs, the weights in slices of kFmaSlice values (the plain passes: twice that), each
// decoded once (E4M3 -> FP16 pattern -> FP32, value x 2^-8, exact: simd::E4M3x16's, 64 columns
// of a pair at a time; BF16 words << 16) into a 16 KiB (32 KiB) L1 panel: step s, pair
// register p holds outputs p (lanes 0-7) and p + 8 (lanes 8-15) at inputs 8s .. 8s + 7. Rows
// run kRows at a time over the slice: 3 x 8 accumulators, 8 panel loads and 3 broadcasts of
// 8 input values per 24 FMAs. Between slices a row keeps its state in scratch (kFp8Block its
// 16 running block sums, the others their 8 pair registers); after its last slice the
// outputs are rounded and stored.
//
// Exactness (LinearTilesScalar's canonical order): lane l of an output adds the products of
// inputs k = l mod 8 in ascending k, from +0 per 128-block. E4M3 x E4M3 products (x 2^-8)
// are exact in FP32 and at least 2^-26, so each FMA rounds as the multiply-then-add does.
// Per block the lanes combine in the canonical tree (simd::ReduceLanes16), then
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

// Slice [k0, k1) of the tile's 16 weight rows (E4M3 codes) -> panel [(k1-k0)/8][8][16] FP32:
// kFp8Block the values x 2^-8; kFp8AsBf16 (scales: the tile's row of E8M0 codes) the
// dequantised values code x scale (exact: BF16 normals, Fp8AsBf16ScalesOk). 64 columns of a
// pair (rows p, p + 8) at a time: two 64-byte loads, their 8-byte steps interleaved (128-bit
// lane i of lo: steps 2i, of hi: steps 2i + 1), then simd::E4M3x16's FP16 pattern 32 codes
// per widening and one conversion per step: 4.5 operations per 16 weights against 8 for
// simd::E4M3x8x2 per step (its two 8-byte loads merged, its row pointers spilled).
DSV4_TARGET_AVX512 void DecodeSlice(const uint8_t* const* row, const uint8_t* scales,
                                    int64_t k0, int64_t k1, float* panel) {
  const __m512i fp16_mask = _mm512_set1_epi16(static_cast<int16_t>(0xBFFF));
  for (int64_t k = k0; k < k1; k += 64) {
    float* dst = panel + ((k - k0) / 8) * kPairs * kTile;
    const __m512 f = _mm512_set1_ps(scales != nullptr
                                        ? E8M0Table()[scales[k / 128]] * simd::kE4M3Fp16Unscale
                                        : 1.0f);
#pragma GCC unroll 8
    for (int p = 0; p < kPairs; ++p) {
      const __m512i a = _mm512_loadu_si512(row[p] + k);
      const __m512i b = _mm512_loadu_si512(row[p + 8] + k);
      const __m512i steps[2] = {_mm512_unpacklo_epi64(a, b), _mm512_unpackhi_epi64(a, b)};
#pragma GCC unroll 2
      for (int odd = 0; odd < 2; ++odd) {
#pragma GCC unroll 2
        for (int half = 0; half < 2; ++half) {  // 128-bit lanes 2 half, 2 half + 1
          // 32 codes -> FP16 patterns (simd::E4M3x16): steps 4 half + odd, 4 half + 2 + odd
          const __m256i c = half == 0 ? _mm512_castsi512_si256(steps[odd])
                                      : _mm512_extracti64x4_epi64(steps[odd], 1);
          const __m512i h =
              _mm512_and_si512(_mm512_slli_epi16(_mm512_cvtepi8_epi16(c), 7), fp16_mask);
#pragma GCC unroll 2
          for (int j = 0; j < 2; ++j) {
            const int step = 4 * half + 2 * j + odd;
            const __m512 v = _mm512_cvtph_ps(j == 0 ? _mm512_castsi512_si256(h)
                                                    : _mm512_extracti64x4_epi64(h, 1));
            _mm512_store_ps(dst + (step * kPairs + p) * kTile,
                            scales != nullptr ? _mm512_mul_ps(v, f) : v);
          }
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

// kR rows over one slice of `blocks` 128-blocks: s[r] += the blocks' scaled partials.
// x[r]: row r's input values at the slice start; xs[r]: its scales of the slice's blocks;
// ws: the tile's weight scales of those blocks.
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
    const float* xb[kR];
    for (int r = 0; r < kR; ++r) xb[r] = x[r] + b * 128;
    PlainRows<kR>(panel + b * 16 * kPairs * kTile, xb, 16, a);
    const __m512 w = _mm512_set1_ps(ws[b]);
#pragma GCC unroll 3
    for (int r = 0; r < kR; ++r) {
      const __m512 part = _mm512_mul_ps(simd::ReduceLanes16(a[r]), unscale);
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
                                int64_t r0, int64_t k0, int64_t k1, int64_t t0, int64_t count,
                                float* acc) {
  const LinearWeight& w = *c.w;
  if constexpr (kPlain) {
    __m512 a[kR][kPairs];
    const float* x[kR];
    for (int r = 0; r < kR; ++r) {
      x[r] = c.x + (r0 + r) * w.in + k0;
      const float* st = acc + (r0 + r) * kPairs * kTile;
      for (int p = 0; p < kPairs; ++p) {
        a[r][p] = k0 == 0 ? _mm512_setzero_ps() : _mm512_load_ps(st + p * kTile);
      }
    }
    PlainRows<kR>(panel, x, (k1 - k0) / 8, a);
    for (int r = 0; r < kR; ++r) {
      if (k1 == w.in) {
        const int64_t at = (r0 + r) * w.out + t0;
        StoreRow(simd::ReduceLanes16(a[r]), count, c.y_f32 != nullptr ? nullptr : c.y + at,
                 c.y_f32 != nullptr ? c.y_f32 + at : nullptr);
      } else {
        float* st = acc + (r0 + r) * kPairs * kTile;
        for (int p = 0; p < kPairs; ++p) _mm512_store_ps(st + p * kTile, a[r][p]);
      }
    }
    return;
  }
  const int64_t blocks = w.in / 128;
  const float* x[kR];
  const float* xs[kR];
  __m512 s[kR];
  for (int r = 0; r < kR; ++r) {
    x[r] = c.x + (r0 + r) * w.in + k0;
    xs[r] = c.xscale + (r0 + r) * blocks + k0 / 128;
    s[r] = k0 == 0 ? _mm512_setzero_ps() : _mm512_load_ps(acc + (r0 + r) * kTile);
  }
  BlockedRows<kR>(panel, x, xs, ws, (k1 - k0) / 128, s);
  for (int r = 0; r < kR; ++r) {
    if (k1 == w.in) {
      const int64_t at = (r0 + r) * w.out + t0;
      StoreRow(s[r], count, c.y_f32 != nullptr ? nullptr : c.y + at,
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
      } else {
        DecodeSlice(row, kPlain ? w.scales + (t0 / 128) * ((w.in + 127) / 128) : nullptr, k0,
                    k1, panel.data());
      }
      if (!kPlain) {
        for (int64_t b = 0; b < (k1 - k0) / 128; ++b) ws[b] = Fp8BlockScale(w, t0, k0 / 128 + b);
      }
      int64_t r0 = 0;
      for (; r0 + kRows <= c.rows; r0 += kRows) {
        RunPass<kPlain, kRows>(c, panel.data(), ws, r0, k0, k1, t0, count, acc.data());
      }
      if (c.rows - r0 == 2) {
        RunPass<kPlain, 2>(c, panel.data(), ws, r0, k0, k1, t0, count, acc.data());
      } else if (c.rows - r0 == 1) {
        RunPass<kPlain, 1>(c, panel.data(), ws, r0, k0, k1, t0, count, acc.data());
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
