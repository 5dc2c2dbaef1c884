// BF16-valued linears over several input rows through VDPBF16PS: kBf16 weights, and kF32
// weights stored as BF16 (the head, the compressors, the router: FP32-promoted BF16 weights
// against BF16 activations). One row stays on the FP32 tiles (a GEMV is bound by the weight
// reads either way); from two rows on, the FP32 tiles' separate multiply and add (16
// multiply-adds per two instructions) made the step compute-bound at B x the one-row cost,
// where VDPBF16PS does 32 per instruction.
//
// Exactness: a BF16 x BF16 product has at most 16 significant bits, so it is exact in FP32
// unless it leaves the normal range; VDPBF16PS adds a lane's two products one after the
// other, each rounded (Bf16DotRoundsSequentially, checked at ISA detection), which is the
// canonical multiply-then-add order once the operands are in pair layout (simd.h). What
// VDPBF16PS does differently is flush subnormal inputs, products and sums to zero. So a call
// takes this path only when every input is a BF16 value (low 16 bits zero, as
// LinearBf16InF32's promoted inputs are) and a tile's results are kept only when its nonzero
// weights and the inputs keep every product and partial sum a multiple of at least 2^-126
// (no subnormal) and far below overflow: the grain / top test of PlainBf16Exact
// (linear_avx512bf16.cpp). A tile that fails it is recomputed by the FP32 tiles (the same
// bits by construction); real weights and activations never come near these limits.
//
// Schedule per tile of 16 outputs: the input is cut into slices of kSlice values; each slice
// of the 16 weight rows is put in pair layout once (a 16 KiB BF16 panel in L1) and then read
// by every input row, 8 rows x 2 pair registers at a time (16 accumulators, 10 loads per 16
// VDPBF16PS), the lane accumulators of all rows living in scratch between slices. The lanes
// of a row see their products in ascending input order, slice after slice, so the result is
// the canonical 8-lane dot whatever the row count, slice or thread split.
#include <algorithm>
#include <bit>
#include <climits>
#include <cstring>

#include "core/check.h"
#include "core/grow.h"
#include "kernels/cpu/linear_internal.h"
#include "kernels/cpu/simd.h"  // its pragmas cover every SIMD function defined below

namespace dsv4::kernels::internal {
namespace {

constexpr int kTile = static_cast<int>(kAvx512Tile);
constexpr int kPairs = kTile / 2;
constexpr int64_t kSlice = 512;  // inputs per slice: panel 16 KiB + 8 rows' inputs 16 KiB
constexpr int kRowGroup = 8;     // input rows per pass over a slice
// Software prefetch distance of the weight rows (one slice ahead).
constexpr int64_t kRowPrefetch = kSlice * 2;

}  // namespace

DSV4_TARGET_AVX512BF16 ExpRange ScanInputs(const float* x, int64_t n) {
  const __m512i abs_mask = _mm512_set1_epi32(0x7FFFFFFF);
  const __m512i low_mask = _mm512_set1_epi32(0xFFFF);
  __m512i vmin = _mm512_set1_epi32(INT_MAX), vmax = _mm512_setzero_si512();
  __mmask16 inexact = 0;
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 live = static_cast<__mmask16>(n - i >= 16 ? 0xFFFF : (1u << (n - i)) - 1);
    const __m512i bits = _mm512_maskz_loadu_epi32(live, x + i);
    inexact |= _mm512_test_epi32_mask(bits, low_mask);
    const __m512i mag = _mm512_and_si512(bits, abs_mask);
    const __mmask16 nz = _mm512_test_epi32_mask(mag, abs_mask);
    vmin = _mm512_mask_min_epu32(vmin, nz, vmin, mag);
    vmax = _mm512_max_epu32(vmax, mag);
  }
  ExpRange r;
  r.ok = inexact == 0;
  const uint32_t lo = static_cast<uint32_t>(_mm512_reduce_min_epu32(vmin));
  const uint32_t hi = static_cast<uint32_t>(_mm512_reduce_max_epu32(vmax));
  if (hi != 0) {
    r.min = static_cast<int>(lo >> 23);
    r.max = static_cast<int>(hi >> 23);
  }
  return r;
}

bool RangesExact(const ExpRange& x, const ExpRange& w, int64_t in) {
  if (x.max == INT_MIN || w.max == INT_MIN) return true;  // every product is a zero
  const int grain = (x.min - 127 - 7) + (w.min - 127 - 7);
  const int top = (x.max - 127 + 1) + (w.max - 127 + 1) +
                  static_cast<int>(std::bit_width(static_cast<uint64_t>(in)));
  return x.min > 0 && w.min > 0 && x.max < 255 && w.max < 255 && grain >= -126 && top <= 120;
}

namespace {

// Weight rows of one tile as BF16 words, and the running magnitude range of its nonzero
// values.
struct TileRows {
  const uint16_t* row[kTile];
  __m512i mag_min, mag_max;
  __mmask32 any_nonzero;
};

// Slice [k0, k1) of the tile's rows into pair layout: panel [(k1-k0)/16][kPairs][32 words],
// pair register p holding row p in dword lanes 0-7 and row p + 8 in lanes 8-15.
DSV4_TARGET_AVX512BF16 void DecodeSlice(TileRows* t, int64_t k0, int64_t k1, uint16_t* panel) {
  // Word 2L (low) of dword lane L < 8: value L + 8 of the first row's 16, word 2L + 1: value
  // L; lanes 8-15 the same from the second row (words 16-31 of the source).
  alignas(64) static constexpr uint16_t kIndex[32] = {
      8,  0,  9,  1,  10, 2,  11, 3,  12, 4,  13, 5,  14, 6,  15, 7,
      24, 16, 25, 17, 26, 18, 27, 19, 28, 20, 29, 21, 30, 22, 31, 23};
  const __m512i index = _mm512_load_si512(kIndex);
  const __m512i abs_mask = _mm512_set1_epi16(0x7FFF);
  for (int64_t k = k0; k < k1; k += 16) {
    uint16_t* dst = panel + ((k - k0) / 16) * kPairs * 32;
#pragma GCC unroll 8
    for (int p = 0; p < kPairs; ++p) {
      if (k % 32 == 0) {
        _mm_prefetch(reinterpret_cast<const char*>(t->row[p] + k + kRowPrefetch), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(t->row[p + 8] + k + kRowPrefetch),
                     _MM_HINT_T0);
      }
      const __m512i both = _mm512_inserti64x4(
          _mm512_castsi256_si512(
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t->row[p] + k))),
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t->row[p + 8] + k)), 1);
      const __m512i mag = _mm512_and_si512(both, abs_mask);
      const __mmask32 nz = _mm512_test_epi16_mask(both, abs_mask);
      t->any_nonzero |= nz;
      t->mag_min = _mm512_mask_min_epu16(t->mag_min, nz, t->mag_min, mag);
      t->mag_max = _mm512_max_epu16(t->mag_max, mag);
      _mm512_store_si512(dst + p * 32, _mm512_permutexvar_epi16(index, both));
    }
  }
}

// The tile's weight exponent range from DecodeSlice's running magnitudes.
DSV4_TARGET_AVX512BF16 ExpRange WeightRange(const TileRows& t) {
  ExpRange r;
  if (t.any_nonzero == 0) return r;
  alignas(64) uint16_t lo[32], hi[32];
  _mm512_store_si512(lo, t.mag_min);
  _mm512_store_si512(hi, t.mag_max);
  const uint16_t mn = *std::min_element(lo, lo + 32), mx = *std::max_element(hi, hi + 32);
  r.min = mn >> 7;
  r.max = mx >> 7;
  return r;
}

// kRows input rows over one panel slice of `steps` x 16 values: acc[r * kPairs + p] (the
// lane accumulators of row r, pair register p) += the slice's products, ascending.
// xw[r]: row r's inputs at the slice start, wide pair layout ([16] dwords per 16 values,
// each canonical lane's pair in dwords j and j + 8).
template <int kRows>
DSV4_TARGET_AVX512BF16 void SliceRows(const uint16_t* panel, int64_t steps,
                                      const uint32_t* const* xw, float* acc) {
  for (int p = 0; p < kPairs; p += 2) {
    __m512 a0[kRows], a1[kRows];
    for (int r = 0; r < kRows; ++r) {
      a0[r] = _mm512_load_ps(acc + (r * kPairs + p) * 16);
      a1[r] = _mm512_load_ps(acc + (r * kPairs + p + 1) * 16);
    }
    for (int64_t s = 0; s < steps; ++s) {
      const __m512i v0 = _mm512_load_si512(panel + (s * kPairs + p) * 32);
      const __m512i v1 = _mm512_load_si512(panel + (s * kPairs + p + 1) * 32);
#pragma GCC unroll 8
      for (int r = 0; r < kRows; ++r) {
        const __m512i x = _mm512_load_si512(xw[r] + s * 16);
        a0[r] = simd::DotBf16(a0[r], x, v0);
        a1[r] = simd::DotBf16(a1[r], x, v1);
      }
    }
    for (int r = 0; r < kRows; ++r) {
      _mm512_store_ps(acc + (r * kPairs + p) * 16, a0[r]);
      _mm512_store_ps(acc + (r * kPairs + p + 1) * 16, a1[r]);
    }
  }
}

DSV4_TARGET_AVX512BF16 void SliceRowsN(int rows, const uint16_t* panel, int64_t steps,
                                       const uint32_t* const* xw, float* acc) {
  switch (rows) {
    case 1: SliceRows<1>(panel, steps, xw, acc); break;
    case 2: SliceRows<2>(panel, steps, xw, acc); break;
    case 3: SliceRows<3>(panel, steps, xw, acc); break;
    case 4: SliceRows<4>(panel, steps, xw, acc); break;
    case 5: SliceRows<5>(panel, steps, xw, acc); break;
    case 6: SliceRows<6>(panel, steps, xw, acc); break;
    case 7: SliceRows<7>(panel, steps, xw, acc); break;
    default: SliceRows<8>(panel, steps, xw, acc); break;
  }
}

}  // namespace

bool Bf16RowsKind(const LinearWeight& w) {
  return w.kind == LinearKind::kBf16 || (w.kind == LinearKind::kF32 && w.f32 == nullptr);
}

DSV4_TARGET_AVX512BF16 bool LinearBf16RowsAvx512Bf16(const LinearCall& c, int64_t n0,
                                                     int64_t n1) {
  const LinearWeight& w = *c.w;
  DSV4_DCHECK(Bf16RowsKind(w) && w.in % 32 == 0);
  const ExpRange xr = ScanInputs(c.x, c.rows * w.in);
  if (!xr.ok) return false;
  // Inputs in wide pair layout [rows][in] dwords.
  AlignedVector<uint32_t>& xw_all = c.scratch->x_pairs;
  GrowTo(xw_all, c.rows * w.in);
  for (int64_t r = 0; r < c.rows; ++r) {
    for (int64_t k = 0; k < w.in; k += 16) {
      uint32_t* dst = xw_all.data() + r * w.in + k;
      simd::PairsFromF32(c.x + r * w.in + k, dst);
      std::memcpy(dst + 8, dst, 8 * sizeof(uint32_t));
    }
  }
  AlignedVector<uint16_t>& panel = c.scratch->panel_bf16;  // one slice
  GrowTo(panel, kSlice / 16 * kPairs * 32);
  AlignedVector<float>& acc = c.scratch->panel;  // [rows][kPairs][16] lane accumulators
  GrowTo(acc, c.rows * kPairs * 16);
  const uint16_t* weights = reinterpret_cast<const uint16_t*>(w.bf16);
  for (int64_t t0 = n0; t0 < n1; t0 += kTile) {
    const int64_t count = std::min<int64_t>(kTile, n1 - t0);
    TileRows t;
    for (int i = 0; i < kTile; ++i) {  // a partial tile repeats its last row
      t.row[i] = weights + (t0 + std::min<int64_t>(i, count - 1)) * w.in;
    }
    t.mag_min = _mm512_set1_epi16(0x7FFF);
    t.mag_max = _mm512_setzero_si512();
    t.any_nonzero = 0;
    std::fill_n(acc.data(), c.rows * kPairs * 16, 0.0f);
    for (int64_t k0 = 0; k0 < w.in; k0 += kSlice) {
      const int64_t k1 = std::min(w.in, k0 + kSlice);
      DecodeSlice(&t, k0, k1, panel.data());
      for (int64_t r0 = 0; r0 < c.rows; r0 += kRowGroup) {
        const int rows = static_cast<int>(std::min<int64_t>(kRowGroup, c.rows - r0));
        const uint32_t* xw[kRowGroup];
        for (int r = 0; r < rows; ++r) xw[r] = xw_all.data() + (r0 + r) * w.in + k0;
        SliceRowsN(rows, panel.data(), (k1 - k0) / 16, xw, acc.data() + r0 * kPairs * 16);
      }
    }
    if (!RangesExact(xr, WeightRange(t), w.in)) {
      LinearFp32TilesAvx512(c, t0, t0 + count);  // the FP32 tiles: the same bits
      continue;
    }
    for (int64_t r = 0; r < c.rows; ++r) {
      const __m512* lanes = reinterpret_cast<const __m512*>(acc.data() + r * kPairs * 16);
      alignas(64) float out[kTile];
      _mm512_store_ps(out, simd::ReduceLanes16(lanes));
      if (c.y_f32 != nullptr) {
        std::memcpy(c.y_f32 + r * w.out + t0, out, static_cast<size_t>(count) * sizeof(float));
      } else {
        BF16* y = c.y + r * w.out + t0;
        for (int64_t i = 0; i < count; ++i) y[i] = F32ToBf16(out[i]);
      }
    }
  }
  return true;
}

}  // namespace dsv4::kernels::internal
