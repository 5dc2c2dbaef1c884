// MXFP4 (kFp4Row32, tile layout) over many input rows through FP32 FMAs: the routed experts'
// GEMM at prefill and large decode batches on AVX-512 BF16 CPUs whose FMAs outrun VDPBF16PS
// (FmaGemmPreferred), in place of linear_fp4_tiles_avx512bf16.cpp's folded-scale panel.
//
// Order: Fp4LaneScaledDot's. Per 32-column chunk c and canonical lane l, part = the exact sum
// of its 4 products (E4M3 x E2M1 code values), then lane += part * s_c with s_c = xscale *
// wscale. The input scale is folded into the input and the weight scale into the lane's FMA:
// when every input and weight scale lies in [2^-kFp4ScaleSpan, 2^kFp4ScaleSpan], x' = x *
// xscale is an exact normal FP32 value, every nonzero product x'w is a multiple of 2^-10 *
// xscale and a chunk's 4-product sum has at most 24 significant bits, so a multiply and three
// FMAs give part' = part * xscale exactly (in any order), part' * wscale = part * s_c is exact
// (>= 2^-126), and lane = fma(part', wscale, lane) rounds once, as the canonical add does (a
// -0 part cannot change a lane, which is never -0). A call with an input scale outside the
// range goes back to the VDPBF16PS paths, a tile with a weight scale outside it to the
// VDPBF16PS tile passes (the same bits).
//
// Layout. A tile's 8 pairs (rows p and p + 8, fp4_tiles.h) decode into FP32 registers whose
// lanes alternate the pair's rows (lane 2j: row p, 2j + 1: row p + 8, both canonical lane j):
// the tile layout's 32-bit lanes, so one shift and one VPERMPS of a 16-entry table per 16
// weights; a pair's chunk scales are one 64-bit broadcast (Fp4PairScalesInRange). A pair's
// chunk is 4 registers (columns 8jj .. 8jj + 7, jj = 0..3); the inputs are kept as [in/8][16]
// with each value twice. Per k-block of kKBlock columns the tile is decoded once into a 16 KiB
// L1 panel (its next k-block prefetched into L2), then kRows rows at a time pass over it
// (2 x 8 lane registers, 4 x 2 input registers, 4 weight registers); the lanes persist across
// k-blocks in scratch and are put in ReduceLanes16's order per tile.
//
// From kFp4FmaMinRows = 5 rows (one thread, 2048 x 4096 and 4096 x 2048, against the
// VDPBF16PS panel: 5 rows 1,102-1,196 against 1,242-1,332 us, 12 rows 1,954-2,136 against
// 2,491-2,555 us; at 4 rows the register pass is faster: 451-478 against 484-546 us on two
// threads). A 3-row pass over 4 pairs at a time measured the same as 2 rows over 8.
#include <algorithm>

#include "core/grow.h"
#include "kernels/cpu/linear_internal.h"
#include "kernels/cpu/simd.h"  // its pragmas cover every SIMD function defined below

namespace dsv4::kernels::internal {
namespace {

constexpr int kTile = static_cast<int>(kAvx512Tile);
constexpr int kPairs = kTile / 2;
constexpr int kRows = 2;            // input rows per pass: 16 lane registers
constexpr int64_t kKBlock = 256;    // columns per panel: 8 chunks x 8 pairs x 4 x 64 B = 16 KiB
constexpr int64_t kChunkFloats = kPairs * 4 * 16;  // one chunk of the panel

alignas(64) constexpr float kE2M1Values[16] = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,
                                               4.0f,  6.0f,  -0.0f, -0.5f, -1.0f, -1.5f,
                                               -2.0f, -3.0f, -4.0f, -6.0f};

// Input rows (E4M3 code values) times their per-128 scales, each value twice: [rows][in/8][16].
DSV4_TARGET_AVX512 void DuplicatedInputs(const LinearCall& c, float* xd) {
  const int64_t in = c.w->in;
  const __m512i twice = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  for (int64_t r = 0; r < c.rows; ++r) {
    for (int64_t k = 0; k < in; k += 8) {
      const __m512 s = _mm512_set1_ps(c.xscale[r * (in / 128) + k / 128]);
      const __m512 v = _mm512_castps256_ps512(_mm256_loadu_ps(c.x + r * in + k));
      _mm512_store_ps(xd + (r * in + k) * 2, _mm512_mul_ps(_mm512_permutexvar_ps(twice, v), s));
    }
  }
}

// Columns [k0, k1) of tile t0 -> panel [chunk][pair][jj][16] of the E2M1 values (FP32, lanes
// alternating the pair's rows).
DSV4_TARGET_AVX512 void DecodePanel(const LinearWeight& w, int64_t t0, int64_t k0, int64_t k1,
                                    float* panel) {
  const int64_t blocks = w.in / 64;
  const __m512 table = _mm512_load_ps(kE2M1Values);
  const uint8_t* tile = w.fp4_tiles + (t0 / kTile) * kPairs * blocks * 64;
  for (int p = 0; p < kPairs; ++p) {
    // Into L2 (as ScaledPanel): this pair's next k-block, after the last one the next tile's
    // first. Without it the block loads waited on memory for a fifth of a 16-row call.
    const uint8_t* src = tile + p * blocks * 64;
    const bool last = k1 == w.in;
    const uint8_t* next = last ? src + kPairs * blocks * 64 : src + (k1 / 64) * 64;
    const int64_t lines = std::min((k1 - k0) / 64, last ? blocks : blocks - k1 / 64);
    for (int64_t i = 0; i < lines; ++i) {
      _mm_prefetch(reinterpret_cast<const char*>(next + i * 64), _MM_HINT_T1);
    }
    for (int64_t b = k0 / 64; b < k1 / 64; ++b) {
      const __m512i z = _mm512_loadu_si512(src + b * 64);
      float* dst = panel + ((2 * b - k0 / 32) * kPairs + p) * 4 * 16;
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) {  // chunk 2b + i / 2 (i = 2h + q), registers jj = 2q, 2q + 1
        // The high words hold columns 16i + j (jj = 2q), the low words 16i + 8 + j.
        float* d = dst + (i / 2) * kChunkFloats + (i % 2) * 2 * 16;
        _mm512_store_ps(d, _mm512_permutexvar_ps(_mm512_srli_epi32(z, 16 + 4 * i), table));
        _mm512_store_ps(d + 16, _mm512_permutexvar_ps(_mm512_srli_epi32(z, 4 * i), table));
      }
    }
  }
}

// kR rows (x[r]: row r's duplicated inputs at the panel's first column) over `chunks` chunks
// of the panel: lanes[r][p] += each chunk's part * wscale (ws: the pairs' chunk scales as
// doubles, [kPairs][in/32], at the panel's first chunk).
template <int kR>
DSV4_TARGET_AVX512 void PassRows(const float* panel, const float* const* x, const double* ws,
                                 int64_t in, int64_t chunks, __m512 (*lanes)[kPairs]) {
  for (int64_t ch = 0; ch < chunks; ++ch) {
    __m512 xv[kR][4];
#pragma GCC unroll 2
    for (int r = 0; r < kR; ++r) {
#pragma GCC unroll 4
      for (int jj = 0; jj < 4; ++jj) xv[r][jj] = _mm512_load_ps(x[r] + (ch * 4 + jj) * 16);
    }
    const float* pc = panel + ch * kChunkFloats;
#pragma GCC unroll 8
    for (int p = 0; p < kPairs; ++p) {
      __m512 wv[4];
#pragma GCC unroll 4
      for (int jj = 0; jj < 4; ++jj) {
        wv[jj] = _mm512_load_ps(pc + (p * 4 + jj) * 16);
        __asm__("" : "+v"(wv[jj]));  // one load, not one per row (linear_gemm_avx512.cpp)
      }
      const __m512 s = _mm512_castpd_ps(_mm512_set1_pd(ws[p * (in / 32) + ch]));
#pragma GCC unroll 2
      for (int r = 0; r < kR; ++r) {
        __m512 part = _mm512_mul_ps(xv[r][0], wv[0]);
        part = _mm512_fmadd_ps(xv[r][1], wv[1], part);
        part = _mm512_fmadd_ps(xv[r][2], wv[2], part);
        part = _mm512_fmadd_ps(xv[r][3], wv[3], part);
        lanes[r][p] = _mm512_fmadd_ps(part, s, lanes[r][p]);
      }
    }
  }
}

// The pass of kR rows from r0 over k-block [k0, k1) of tile t0: lanes from +0 (first block)
// or scratch, back to scratch or (last block) reduced to the outputs.
template <int kR>
DSV4_TARGET_AVX512 void RunPass(const LinearCall& c, const float* panel, const float* xd,
                                const float* wsp, int64_t r0, int64_t k0, int64_t k1, int64_t t0,
                                int64_t count, float* state) {
  const LinearWeight& w = *c.w;
  // Fully unrolled, so the lanes stay registers from the state's loads to its stores.
  __m512 lanes[kR][kPairs];
  const float* x[kR];
#pragma GCC unroll 2
  for (int r = 0; r < kR; ++r) {
    x[r] = xd + ((r0 + r) * w.in + k0) * 2;
    const float* st = state + (r0 + r) * kPairs * 16;
#pragma GCC unroll 8
    for (int p = 0; p < kPairs; ++p) {
      lanes[r][p] = k0 == 0 ? _mm512_setzero_ps() : _mm512_load_ps(st + p * 16);
    }
  }
  PassRows<kR>(panel, x, reinterpret_cast<const double*>(wsp) + k0 / 32, w.in, (k1 - k0) / 32,
               lanes);
  // Alternating rows -> ReduceLanes16's halves (row p in lanes 0-7, row p + 8 in 8-15).
  const __m512i halves = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
#pragma GCC unroll 2
  for (int r = 0; r < kR; ++r) {
    if (k1 < w.in) {
      float* st = state + (r0 + r) * kPairs * 16;
#pragma GCC unroll 8
      for (int p = 0; p < kPairs; ++p) _mm512_store_ps(st + p * 16, lanes[r][p]);
      continue;
    }
    __m512 h[kPairs];
#pragma GCC unroll 8
    for (int p = 0; p < kPairs; ++p) h[p] = _mm512_permutexvar_ps(halves, lanes[r][p]);
    const __m512 v = simd::ReduceLanes16(h);
    const int64_t at = (r0 + r) * w.out + t0;
    if (c.y_f32 != nullptr) {
      _mm512_mask_storeu_ps(c.y_f32 + at, simd::FirstLanes16(count), v);
      continue;
    }
    alignas(64) float out[kTile];
    _mm512_store_ps(out, v);
    for (int64_t i = 0; i < count; ++i) c.y[at + i] = F32ToBf16(out[i]);
  }
}

}  // namespace

DSV4_TARGET_AVX512 bool Fp4PairScalesInRange(const LinearWeight& w, int64_t t0, float* wsp) {
  const int64_t chunks = w.in / 32;
  const __m128i one = _mm_set1_epi8(127);
  __m128i low_code = one, high_code = one;
  for (int p = 0; p < kPairs; ++p) {
    const int64_t row_a = t0 + p, row_b = t0 + p + 8;
    for (int64_t c0 = 0; c0 < chunks; c0 += 16) {
      const int64_t n = std::min<int64_t>(16, chunks - c0);
      auto load = [&](int64_t row) {
        if (row >= w.out) return one;
        return _mm_mask_loadu_epi8(one, simd::FirstLanes16(n), w.scales + row * chunks + c0);
      };
      const __m128i a = load(row_a), b = load(row_b);
      low_code = _mm_min_epu8(low_code, _mm_min_epu8(a, b));
      high_code = _mm_max_epu8(high_code, _mm_max_epu8(a, b));
      // a0 b0 a1 b1 ... as dwords, each code << 23: the FP32 bits of 2^(code - 127)
      const __m512i lo = _mm512_slli_epi32(_mm512_cvtepu8_epi32(_mm_unpacklo_epi8(a, b)), 23);
      const __m512i hi = _mm512_slli_epi32(_mm512_cvtepu8_epi32(_mm_unpackhi_epi8(a, b)), 23);
      float* dst = wsp + (p * chunks + c0) * 2;
      _mm512_mask_storeu_epi32(dst, simd::FirstLanes16(2 * n), lo);
      _mm512_mask_storeu_epi32(dst + 16, simd::FirstLanes16(std::max<int64_t>(0, 2 * n - 16)), hi);
    }
  }
  const __m128i low = _mm_set1_epi8(static_cast<char>(127 - kFp4ScaleSpan));
  const __m128i high = _mm_set1_epi8(static_cast<char>(127 + kFp4ScaleSpan));
  return _mm_cmplt_epu8_mask(low_code, low) == 0 && _mm_cmpgt_epu8_mask(high_code, high) == 0;
}

int64_t Fp4FmaRowBlock(int64_t in) {
  return std::clamp<int64_t>((int64_t{1} << 17) / std::max<int64_t>(in, 1), 8, 64);
}

DSV4_TARGET_AVX512 bool LinearFp4FmaAvx512(const LinearCall& c, int64_t n0, int64_t n1) {
  const LinearWeight& w = *c.w;
  if (c.rows < kFp4FmaMinRows || w.kind != LinearKind::kFp4Row32 || w.fp4_tiles == nullptr ||
      w.in % 64 != 0) {
    return false;
  }
  for (int64_t i = 0; i < c.rows * (w.in / 128); ++i) {
    if (!Fp4XScaleInRange(c.xscale[i])) return false;
  }
  AlignedVector<uint32_t>& xd_words = c.scratch->x_pairs_scaled;
  GrowTo(xd_words, c.rows * w.in * 2);
  float* xd = reinterpret_cast<float*>(xd_words.data());
  DuplicatedInputs(c, xd);
  AlignedVector<float>& panel = c.scratch->panel;
  GrowTo(panel, (kKBlock / 32) * kChunkFloats);
  AlignedVector<float>& state = c.scratch->row_sums;
  GrowTo(state, c.rows * kPairs * 16);
  AlignedVector<float>& wsp = c.scratch->fp4_scales;
  GrowTo(wsp, kTile * (w.in / 32));
  for (int64_t t0 = n0; t0 < n1; t0 += kTile) {
    const int64_t count = std::min<int64_t>(kTile, n1 - t0);
    if (!Fp4PairScalesInRange(w, t0, wsp.data())) {  // a weight scale outside the range
      LinearFp4TilesAvx512Bf16(c, t0, t0 + count);    // the VDPBF16PS tile passes: same bits
      continue;
    }
    for (int64_t k0 = 0; k0 < w.in; k0 += kKBlock) {
      const int64_t k1 = std::min(w.in, k0 + kKBlock);
      DecodePanel(w, t0, k0, k1, panel.data());
      int64_t r0 = 0;
      for (; r0 + kRows <= c.rows; r0 += kRows) {
        RunPass<kRows>(c, panel.data(), xd, wsp.data(), r0, k0, k1, t0, count, state.data());
      }
      if (r0 < c.rows) {
        RunPass<1>(c, panel.data(), xd, wsp.data(), r0, k0, k1, t0, count, state.data());
      }
    }
  }
  return true;
}

}  // namespace dsv4::kernels::internal
