// FP4 (MXFP4) and NVFP4 linears from the tile layout (kernels/cpu/fp4_tiles.h) through
// VDPBF16PS: the AVX-512 BF16 path for routed experts repacked at load. Same results as the
// checkpoint-layout paths (Fp4LaneScaledDot's / Nvfp4LaneScaledDot's order); see
// linear_avx512bf16.cpp for the exactness argument.
#include <algorithm>
#include <array>
#include <bit>
#include <vector>

#include "core/check.h"
#include "kernels/cpu/linear_internal.h"
#include "kernels/cpu/simd.h"  // its pragmas cover every SIMD function defined below

namespace dsv4::kernels::internal {
namespace {

constexpr int kTile = static_cast<int>(kAvx512Tile);
constexpr int kPairs = kTile / 2;

// BF16 words of the 16 E2M1 codes (simd::kE2M1Bf16Bytes' low and high bytes), twice: VPERMW
// reads 5 index bits.
constexpr std::array<uint16_t, 32> kE2M1Bf16Words = [] {
  std::array<uint16_t, 32> t{};
  for (int i = 0; i < 32; ++i) {
    t[i] = static_cast<uint16_t>(simd::kE2M1Bf16Bytes[i & 15] |
                                 (simd::kE2M1Bf16Bytes[16 + (i & 15)] << 8));
  }
  return t;
}();

// Software prefetch distance of the tile stream (measured on Zen 5: none 333 us, 1 KiB 250
// us, 2 KiB 240-266 us, 4 KiB 253 us for a 2048 x 4096 GEMV on 2 threads). The tile streams
// are prefetched into every level (T0), not non-temporally: on an Intel Xeon with AMX
// (Sapphire Rapids class, 2 vCPUs) PREFETCHNTA of these streams left the one-row MXFP4 GEMV
// at 466-489 us against 185-196 us with T0 (2048 x 4096, 2 threads), NVFP4 399-418 against
// 293-295 us; T1 measured as T0.
constexpr int64_t kFp4TilePrefetch = 2048;

// The 4 registers of 32 BF16 weights of one 64-byte block z: register i holds column group
// 16i .. 16i + 15 of the block's two rows (fp4_tiles.h). Nibble i of each word is register
// i's index; bit 4 may hold the next nibble's low bit, which the 32-entry table ignores
// (entries 16-31 repeat 0-15).
DSV4_TARGET_AVX512BF16 inline void DecodeBlockWords(const uint8_t* src, __m512i table,
                                                    __m512i* v) {
  const __m512i z = _mm512_loadu_si512(src);
  v[0] = _mm512_permutexvar_epi16(z, table);
  v[1] = _mm512_permutexvar_epi16(_mm512_srli_epi16(z, 4), table);
  v[2] = _mm512_permutexvar_epi16(_mm512_srli_epi16(z, 8), table);
  v[3] = _mm512_permutexvar_epi16(_mm512_srli_epi16(z, 12), table);
}
// The same, prefetching the stream kFp4TilePrefetch bytes ahead (one pass over the tile).
DSV4_TARGET_AVX512BF16 inline void DecodeBlock(const uint8_t* src, __m512i table, __m512i* v) {
  _mm_prefetch(reinterpret_cast<const char*>(src + kFp4TilePrefetch), _MM_HINT_T0);
  DecodeBlockWords(src, table, v);
}

// FP4 and NVFP4 from the tile layout (kernels/cpu/fp4_tiles.h), the orders of
// Fp4LaneScaledDot / Nvfp4LaneScaledDot: per block of 64 columns one 64-byte load and one
// VPERMW per register of 32 weights (DecodeBlock); a pair register's lanes alternate between
// its two rows (even: row p, odd: row p + 8), so a chunk's two scales are one 64-bit
// broadcast; the lanes are put back in RowsTileFp4's order once per tile. xd[r]: input row r
// as [in/16][16] word pairs, canonical lane j's pair in lanes 2j and 2j + 1; xs[r]: its
// per-128 scales.
//
// MXFP4 (kNv false): VDPBF16PS twice from +0 gives a chunk's 4 exact products per lane, then
// lane += part * (xscale * ws). NVFP4: register 2c of the chunk covers its first 16-block
// (canonical j = 0, 1: columns l and l + 8) and register 2c + 1 the second (j = 2, 3), so one
// VDPBF16PS from +0 on each gives p0 and p1 exactly (the products and their sums are exact,
// linear_avx512bf16.cpp); then part = p0 * b0 + p1 * b1 and lane += part * xscale, separate
// multiplies and adds.
//
// wsp: the tile's weight scales per pair as 64-bit (row a, row b) patterns, FP32
// [kPairs][in/32][2] chunk scales (TilePairScales) or [kPairs][in/16][2] block scales b
// (Nvfp4TilePairScales).
template <int kRows, bool kNv>
DSV4_TARGET_AVX512BF16 void RowsTileFp4Tiles(const uint8_t* tile, const float* wsp,
                                             int64_t in, const uint32_t* const* xd,
                                             const float* const* xs, __m512* out) {
  const int64_t chunks = in / 32, blocks = in / 64;
  const __m512i table = _mm512_loadu_si512(kE2M1Bf16Words.data());
  const __m512i unzip = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
  __m512 lanes[kRows][kPairs];
  for (int p = 0; p < kPairs; ++p) {
    const uint8_t* src = tile + p * blocks * 64;
    const double* ws_pairs = reinterpret_cast<const double*>(wsp + p * chunks * (kNv ? 4 : 2));
    __m512 sum[kRows];
    for (int r = 0; r < kRows; ++r) sum[r] = _mm512_setzero_ps();
    for (int64_t b = 0; b < blocks; ++b) {
      __m512i v[4];
      DecodeBlock(src + b * 64, table, v);
      for (int c = 0; c < 2; ++c) {
        const int64_t ch = 2 * b + c, k = 32 * ch;
        if constexpr (kNv) {
          const __m512 b0 = _mm512_castpd_ps(_mm512_set1_pd(ws_pairs[2 * ch]));
          const __m512 b1 = _mm512_castpd_ps(_mm512_set1_pd(ws_pairs[2 * ch + 1]));
          for (int r = 0; r < kRows; ++r) {
            const __m512 p0 = simd::DotBf16(_mm512_setzero_ps(), _mm512_loadu_si512(xd[r] + k),
                                            v[2 * c]);
            const __m512 p1 = simd::DotBf16(_mm512_setzero_ps(),
                                            _mm512_loadu_si512(xd[r] + k + 16), v[2 * c + 1]);
            const __m512 part = _mm512_add_ps(_mm512_mul_ps(p0, b0), _mm512_mul_ps(p1, b1));
            sum[r] = _mm512_add_ps(sum[r], _mm512_mul_ps(part, _mm512_set1_ps(xs[r][ch / 4])));
          }
        } else {
          const __m512 ws = _mm512_castpd_ps(_mm512_set1_pd(ws_pairs[ch]));
          for (int r = 0; r < kRows; ++r) {
            const __m512i x0 = _mm512_loadu_si512(xd[r] + k);
            const __m512i x1 = _mm512_loadu_si512(xd[r] + k + 16);
            const __m512 part =
                simd::DotBf16(simd::DotBf16(_mm512_setzero_ps(), x0, v[2 * c]), x1, v[2 * c + 1]);
            const __m512 s = _mm512_mul_ps(_mm512_set1_ps(xs[r][ch / 4]), ws);
            sum[r] = _mm512_add_ps(sum[r], _mm512_mul_ps(part, s));
          }
        }
      }
    }
    for (int r = 0; r < kRows; ++r) lanes[r][p] = _mm512_permutexvar_ps(unzip, sum[r]);
  }
  for (int r = 0; r < kRows; ++r) out[r] = simd::ReduceLanes16(lanes[r]);
}

// The tile's chunk scales as RowsTileFp4Tiles and ScaledRowsTileRegs read them: wsp
// [kPairs][chunks][2] FP32 (chunk c of pair p = row p's scale, row p + 8's scale: the 64-bit
// pattern a pair register's lanes alternate over); padding rows (codes 0) get 1. Returns
// whether every real row's scale lies within 2^+-kFp4ScaleSpan: then each is code << 23 (no
// special code in range); else the tile goes through simd::E8M0x16 (code 0: 2^-127, 255: NaN).
DSV4_TARGET_AVX512BF16 bool TilePairScales(const LinearWeight& w, int64_t t0, float* wsp) {
  if (Fp4PairScalesInRange(w, t0, wsp)) return true;
  const int64_t chunks = w.in / 32;
  const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
  for (int p = 0; p < kPairs; ++p) {
    const int64_t row_a = t0 + p, row_b = t0 + p + 8;
    for (int64_t c0 = 0; c0 < chunks; c0 += 16) {
      const int64_t n = std::min<int64_t>(16, chunks - c0);
      auto load = [&](int64_t row) {
        if (row >= w.out) return _mm512_set1_ps(1.0f);
        return simd::E8M0x16(_mm512_cvtepu8_epi32(
            _mm_maskz_loadu_epi8(simd::FirstLanes16(n), w.scales + row * chunks + c0)));
      };
      const __m512 a = load(row_a), b = load(row_b);
      float* dst = wsp + (p * chunks + c0) * 2;
      _mm512_mask_storeu_ps(dst, simd::FirstLanes16(2 * n), _mm512_permutex2var_ps(a, lo, b));
      _mm512_mask_storeu_ps(dst + 16, simd::FirstLanes16(std::max<int64_t>(0, 2 * n - 16)),
                            _mm512_permutex2var_ps(a, hi, b));
    }
  }
  return false;
}

// The tile's NVFP4 block scales as RowsTileFp4Tiles reads them: wsp [kPairs][in/16][2], each
// b = fp32(e4m3) * global (Nvfp4LaneScaledDot's rounding), 32 at a time without a table: the
// two rows' codes interleaved bytewise, then simd::E4M3x16 (values × 2^-8, exact, subnormal
// codes included), × 256 (exact), × global (the one rounding). NaN codes (refused at load)
// would decode as ±480. A partial tile's missing rows reuse its last row (their codes are 0).
// Writes up to 32 floats past the last pair's scales (the caller's padding).
DSV4_TARGET_AVX512BF16 void Nvfp4TilePairScales(const LinearWeight& w, int64_t t0, int64_t count,
                                                float* wsp) {
  const int64_t blocks = w.in / 16;
  const __m512 unscale = _mm512_set1_ps(simd::kE4M3Fp16Unscale);
  const __m512 global = _mm512_set1_ps(w.global_scale);
  for (int p = 0; p < kPairs; ++p) {
    const uint8_t* row_a = w.scales + (t0 + std::min<int64_t>(p, count - 1)) * blocks;
    const uint8_t* row_b = w.scales + (t0 + std::min<int64_t>(p + 8, count - 1)) * blocks;
    float* dst = wsp + p * blocks * 2;
    for (int64_t b0 = 0; b0 < blocks; b0 += 16) {
      const int64_t n = std::min<int64_t>(16, blocks - b0);
      const __mmask16 live = static_cast<__mmask16>(n >= 16 ? 0xFFFF : (1u << n) - 1);
      const __m128i a = _mm_maskz_loadu_epi8(live, row_a + b0);
      const __m128i b = _mm_maskz_loadu_epi8(live, row_b + b0);
      const __m512 lo = simd::E4M3x16(_mm_unpacklo_epi8(a, b));  // a0 b0 a1 b1 ... a7 b7
      const __m512 hi = simd::E4M3x16(_mm_unpackhi_epi8(a, b));  // a8 b8 ... a15 b15
      _mm512_storeu_ps(dst + 2 * b0, _mm512_mul_ps(_mm512_mul_ps(lo, unscale), global));
      _mm512_storeu_ps(dst + 2 * b0 + 16, _mm512_mul_ps(_mm512_mul_ps(hi, unscale), global));
    }
  }
}

// FP4 / NVFP4 from the tile layout: all input rows over one tile, up to 4 per pass.
template <bool kNv>
DSV4_TARGET_AVX512BF16 void TileFp4Tiles(const LinearCall& call, int64_t t0, const float* wsp,
                                         const uint32_t* xd_all, int64_t count) {
  const LinearWeight& w = *call.w;
  const uint8_t* tile = w.fp4_tiles + (t0 / 16) * kPairs * w.in;  // 8 pairs x in bytes
  const int64_t xs_stride = w.in / 128;
  for (int64_t r0 = 0; r0 < call.rows; r0 += 4) {
    const int rows = static_cast<int>(std::min<int64_t>(4, call.rows - r0));
    const uint32_t* xd[4];
    const float* xs[4];
    for (int r = 0; r < rows; ++r) {
      xd[r] = xd_all + (r0 + r) * w.in;
      xs[r] = call.xscale + (r0 + r) * xs_stride;
    }
    __m512 res[4];
    switch (rows) {
      case 1: RowsTileFp4Tiles<1, kNv>(tile, wsp, w.in, xd, xs, res); break;
      case 2: RowsTileFp4Tiles<2, kNv>(tile, wsp, w.in, xd, xs, res); break;
      case 3: RowsTileFp4Tiles<3, kNv>(tile, wsp, w.in, xd, xs, res); break;
      default: RowsTileFp4Tiles<4, kNv>(tile, wsp, w.in, xd, xs, res); break;
    }
    for (int r = 0; r < rows; ++r) {
      alignas(64) float out[kTile];
      _mm512_store_ps(out, res[r]);
      BF16* y = call.y + (r0 + r) * w.out + t0;
      for (int64_t i = 0; i < count; ++i) y[i] = F32ToBf16(out[i]);
    }
  }
}

// ---------------------------------------------------------------------------------------
// MXFP4 over 5+ input rows (ScaledTile) with both scales folded into the VDPBF16PS operands.
// Each chunk's scale s_c = xscale * wscale is a power of two; when every input scale and every
// weight scale of a tile lies in [2^-kFp4ScaleSpan, 2^kFp4ScaleSpan] (kFp4ScaleSpan = 56,
// ScaledTileExponents checks), x' = x * xscale and w' = w * wscale are normal BF16 values
// (|x| in [2^-9, 448], |w| in [0.5, 6]), every nonzero product x'w' is a multiple of 2^-10 *
// s_c >= 2^-126, and a chunk's 4-product sums stay below 2^126: VDPBF16PS from +0 gives
// part * s_c exactly, which is what Fp4LaneScaledDot adds to the lane (its s_c and part * s_c
// are exact in that range).
// So each (row, chunk, lane) costs two VDPBF16PS and one add, the scales are applied once per
// decoded weight register (an exponent add, shared by every row of a pass) instead of two
// multiplies per row, and the adds run beside the dot products. Tiles outside the range go
// to RowsTileFp4Tiles with the unscaled input; the lane sums and their order are the same.
// Columns per k-block: the tile's decoded k-block (kScaledKBlock x 32 bytes) and the input
// rows' slices of it (4 bytes per column and row) stay in L1 while every row passes over it.
// Rows per pass: kMaxScaledRows x kPairs / 2 lane sums, 8 weight registers and 2 input
// registers fit the 32 registers. Measured here (one thread, 512 x 4096, 16 rows): k-blocks
// of 128 / 256 / 512 columns 0.52 / 0.57 / 0.57-0.60 of the VDPBF16PS peak; 4 rows x 4 pairs
// per pass against 8 rows x 2 pairs 0.57 / 0.40; decoding in registers per pass of 4-8 rows
// (no panel) 0.38-0.46.
constexpr int64_t kScaledKBlock = 256;
constexpr int kMaxScaledRows = 4;

// Input rows [rows, in] (E4M3 code values) times their per-128 scales, as word pairs at full
// width ([in/16][16], canonical lane j's pair in dword lanes 2j and 2j + 1, like xd above).
DSV4_TARGET_AVX512BF16 void ScaledInputPairs(const LinearCall& c, uint32_t* xd) {
  const int64_t in = c.w->in;
  const __m512i low_half = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  const __m512i high_half = _mm512_add_epi32(low_half, _mm512_set1_epi32(8));
  for (int64_t r = 0; r < c.rows; ++r) {
    for (int64_t k = 0; k < in; k += 16) {
      const __m512 s = _mm512_set1_ps(c.xscale[r * (in / 128) + k / 128]);
      const __m512i v = _mm512_castps_si512(_mm512_mul_ps(_mm512_loadu_ps(c.x + r * in + k), s));
      // dword 2j, 2j + 1: value j's BF16 word high, value j + 8's low (exact: E4M3 x 2^e)
      const __m512i hi = _mm512_permutexvar_epi32(low_half, v);
      const __m512i lo = _mm512_srli_epi32(_mm512_permutexvar_epi32(high_half, v), 16);
      _mm512_storeu_si512(xd + r * in + k, _mm512_ternarylogic_epi32(
                                               hi, _mm512_set1_epi32(static_cast<int>(0xFFFF0000u)),
                                               lo, 0xEA));  // (hi & mask) | lo
    }
  }
}

// The tile's weight scales as exponent deltas of BF16 words: wexp [kPairs][in/32][2] dwords,
// chunk c of pair p = (row p's delta in both words, row p + 8's delta in both words), the
// 64-bit pattern a pair register's lanes alternate over. False (wexp unfinished) when a scale
// of a real row is outside +-kFp4ScaleSpan; padding rows (codes 0) get delta 0.
DSV4_TARGET_AVX512BF16 bool ScaledTileExponents(const LinearWeight& w, int64_t t0, uint32_t* wexp) {
  const int64_t chunks = w.in / 32;
  const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
  const __m512i bias = _mm512_set1_epi32(127);
  __m512i low_code = _mm512_set1_epi32(127), high_code = _mm512_set1_epi32(127);
  for (int p = 0; p < kPairs; ++p) {
    const int64_t row_a = t0 + p, row_b = t0 + p + 8;
    for (int64_t c0 = 0; c0 < chunks; c0 += 16) {
      const __mmask16 live = simd::FirstLanes16(chunks - c0);
      auto load = [&](int64_t row) {
        if (row >= w.out) return bias;
        return _mm512_mask_mov_epi32(
            bias, live, _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(live, w.scales + row * chunks + c0)));
      };
      const __m512i a = load(row_a), b = load(row_b);
      low_code = _mm512_min_epi32(low_code, _mm512_min_epi32(a, b));
      high_code = _mm512_max_epi32(high_code, _mm512_max_epi32(a, b));
      auto delta = [&](__m512i code) {  // (code - 127) << 7 in both 16-bit halves
        const __m512i d = _mm512_and_si512(_mm512_slli_epi32(_mm512_sub_epi32(code, bias), 7),
                                           _mm512_set1_epi32(0xFFFF));
        return _mm512_or_si512(d, _mm512_slli_epi32(d, 16));
      };
      const __m512i da = delta(a), db = delta(b);
      uint32_t* dst = wexp + (p * chunks + c0) * 2;
      const int64_t n = std::min<int64_t>(16, chunks - c0);
      _mm512_mask_storeu_epi32(dst, simd::FirstLanes16(2 * n), _mm512_permutex2var_epi32(da, lo, db));
      _mm512_mask_storeu_epi32(dst + 16, simd::FirstLanes16(std::max<int64_t>(0, 2 * n - 16)),
                               _mm512_permutex2var_epi32(da, hi, db));
    }
  }
  return _mm512_reduce_min_epi32(low_code) >= 127 - kFp4ScaleSpan &&
         _mm512_reduce_max_epi32(high_code) <= 127 + kFp4ScaleSpan;
}

// A k-block of a tile decoded with its weight scales folded in: panel [chunk][kPairs][2][32]
// BF16 words (chunk ch's two registers of pair p: columns 32ch .. 32ch + 31 of rows p and
// p + 8, in DecodeBlock's register order), chunks [2 * b0, 2 * b1).
DSV4_TARGET_AVX512BF16 void ScaledPanel(const uint8_t* tile, const uint32_t* wexp, int64_t in,
                                        int64_t b0, int64_t b1, uint16_t* panel) {
  const int64_t chunks = in / 32, blocks = in / 64;
  const __m512i table = _mm512_loadu_si512(kE2M1Bf16Words.data());
  for (int p = 0; p < kPairs; ++p) {
    const uint8_t* src = tile + p * blocks * 64;
    const uint32_t* e = wexp + p * chunks * 2;
    // Into L2: this pair's next k-block, after the last one the next tile's first.
    const bool last = b1 == blocks;
    const uint8_t* next = last ? src + kPairs * blocks * 64 : src + b1 * 64;
    const int64_t lines = std::min(kScaledKBlock / 64, last ? blocks : blocks - b1);
    for (int64_t i = 0; i < lines; ++i) {
      _mm_prefetch(reinterpret_cast<const char*>(next + i * 64), _MM_HINT_T1);
    }
    for (int64_t b = b0; b < b1; ++b) {
      __m512i v[4];
      DecodeBlockWords(src + b * 64, table, v);
      for (int c = 0; c < 2; ++c) {
        const int64_t ch = 2 * b + c;
        const __m512i delta =
            _mm512_broadcastq_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(e + 2 * ch)));
        uint16_t* dst = panel + (((ch - 2 * b0) * kPairs + p) * 2) * 32;
        _mm512_store_si512(dst, simd::ScaleBf16Words(v[2 * c], delta));
        _mm512_store_si512(dst + 32, simd::ScaleBf16Words(v[2 * c + 1], delta));
      }
    }
  }
}

// MXFP4 over 1-4 scaled input rows, decoded in registers (no panel): per (row, chunk) two
// VDPBF16PS from +0 on the unscaled weights give part * xscale exactly (x' = x * xscale is
// normal BF16, every product a multiple of 2^-10 * xscale >= 2^-66 in the checked range), and
// one FMA adds part * xscale * wscale to the lane: the product by the power of two wscale is
// exact (>= 2^-122, < 2^126), so the fused add rounds once, as Fp4LaneScaledDot's add does.
// Per 64-byte block one load, three shifts and four VPERMW shared by the rows, then per row
// four VDPBF16PS and two FMAs (folding the weight scale into the decoded words instead costs
// four more operations per block: ScaledPanel's exponent adds pay off only over a panel of 4+
// rows). P pairs side by side: P independent FMA chains per row (one thread, 256 x 4096 in
// L2, one row: P = 1 / 2 / 4 21.5-22.0 / 16.2 / 14.5-15.4 us; three rows 34.5-36.6 / 31.4-33.0 /
// 29.7-30.9 us; the folded-word version this replaced: 22.0 and 39.6-41.3 us).
// wsp: TilePairScales' (in range); xd: ScaledInputPairs'.
template <int kRows, int P>
DSV4_TARGET_AVX512BF16 void ScaledRowsTileRegs(const uint8_t* tile, const float* wsp, int64_t in,
                                               const uint32_t* const* xd, __m512* out) {
  const int64_t chunks = in / 32, blocks = in / 64;
  const __m512i table = _mm512_loadu_si512(kE2M1Bf16Words.data());
  const __m512i unzip = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
  __m512 lanes[kRows][kPairs];
  for (int p0 = 0; p0 < kPairs; p0 += P) {
    const uint8_t* src[P];
    const double* ws[P];
    __m512 sum[kRows][P];
    for (int q = 0; q < P; ++q) {
      src[q] = tile + (p0 + q) * blocks * 64;
      ws[q] = reinterpret_cast<const double*>(wsp + (p0 + q) * chunks * 2);
      for (int r = 0; r < kRows; ++r) sum[r][q] = _mm512_setzero_ps();
    }
    for (int64_t b = 0; b < blocks; ++b) {
      __m512i v[P][4];
      for (int q = 0; q < P; ++q) {
        // The same block of the next group of P pairs (after the last group, the next tile's):
        // a fixed distance ahead (kFp4TilePrefetch) lands in a stream of this group, already
        // read, at P x 2 KiB streams (measured one thread, 2048 x 4096 streamed from memory:
        // 232-242 us against 300-364 us at 2-8 KiB). T0, see kFp4TilePrefetch.
        _mm_prefetch(reinterpret_cast<const char*>(src[q] + b * 64 + P * in), _MM_HINT_T0);
        DecodeBlockWords(src[q] + b * 64, table, v[q]);
      }
      for (int c = 0; c < 2; ++c) {
        const int64_t ch = 2 * b + c, k = 32 * ch;
        for (int r = 0; r < kRows; ++r) {
          const __m512i x0 = _mm512_loadu_si512(xd[r] + k);
          const __m512i x1 = _mm512_loadu_si512(xd[r] + k + 16);
          for (int q = 0; q < P; ++q) {
            const __m512 part = simd::DotBf16(simd::DotBf16(_mm512_setzero_ps(), x0, v[q][2 * c]),
                                              x1, v[q][2 * c + 1]);
            sum[r][q] = _mm512_fmadd_ps(part, _mm512_castpd_ps(_mm512_set1_pd(ws[q][ch])),
                                        sum[r][q]);
          }
        }
      }
    }
    for (int r = 0; r < kRows; ++r) {
      for (int q = 0; q < P; ++q) lanes[r][p0 + q] = _mm512_permutexvar_ps(unzip, sum[r][q]);
    }
  }
  for (int r = 0; r < kRows; ++r) out[r] = simd::ReduceLanes16(lanes[r]);
}

// Rows in registers at most (ScaledRowsTileRegs; the L1 panel, ScaledTile, from kMaxRegsRows + 1
// rows). Per row and block the registers cost 4 VDPBF16PS and 2 FMAs on the FMA pipes, the
// panel 4 VDPBF16PS and 2 adds (the adder pipes) after its exponent adds: the panel wins once
// enough rows share its decode. `dsv4_kernel_bench --benchmark_filter=BM_GemvFp4OneThread`
// (one thread, CPU time, load 3-4), registers against the panel: 2048 x 4096 4 rows 512-564
// against 516-518 us, 8 rows 813-844 against 702-732; 4096 x 2048 4 rows 459-475 against
// 494-505, 8 rows 792-840 against 691-815.
constexpr int kMaxRegsRows = 4;

// All 1-kMaxRegsRows input rows over one tile in one pass (ScaledRowsTileRegs): P = 4 pairs
// side by side up to 3 rows, 2 pairs at 4 rows (kRows x P lane sums, 4P decoded registers).
DSV4_TARGET_AVX512BF16 void ScaledTileRegs(const LinearCall& call, int64_t t0, const float* wsp,
                                           const uint32_t* xd_all, int64_t count) {
  const LinearWeight& w = *call.w;
  const uint8_t* tile = w.fp4_tiles + (t0 / 16) * kPairs * w.in;
  DSV4_CHECK(call.rows >= 1 && call.rows <= kMaxRegsRows);
  const uint32_t* xd[kMaxRegsRows];
  for (int64_t r = 0; r < call.rows; ++r) xd[r] = xd_all + r * w.in;
  __m512 res[kMaxRegsRows];
  switch (call.rows) {
    case 1: ScaledRowsTileRegs<1, 4>(tile, wsp, w.in, xd, res); break;
    case 2: ScaledRowsTileRegs<2, 4>(tile, wsp, w.in, xd, res); break;
    case 3: ScaledRowsTileRegs<3, 4>(tile, wsp, w.in, xd, res); break;
    default: ScaledRowsTileRegs<4, 2>(tile, wsp, w.in, xd, res); break;
  }
  for (int64_t r = 0; r < call.rows; ++r) {
    alignas(64) float o[kTile];
    _mm512_store_ps(o, res[r]);
    BF16* y = call.y + r * w.out + t0;
    for (int64_t i = 0; i < count; ++i) y[i] = F32ToBf16(o[i]);
  }
}

// kRows scaled input rows over pairs [p0, p0 + P) of a decoded k-block (`chunks` chunks from
// column k0): lane sums acc [kRows][kPairs] registers, carried across k-blocks in order.
template <int kRows, int P>
DSV4_TARGET_AVX512BF16 void ScaledPanelRows(const uint16_t* panel, int64_t chunks, int64_t k0,
                                            const uint32_t* const* xd, int p0, __m512* acc) {
  __m512 sum[kRows][P];
  for (int r = 0; r < kRows; ++r) {
    for (int q = 0; q < P; ++q) sum[r][q] = acc[r * kPairs + p0 + q];
  }
  for (int64_t ch = 0; ch < chunks; ++ch) {
    __m512i v[P][2];
    for (int q = 0; q < P; ++q) {
      const uint16_t* src = panel + ((ch * kPairs + p0 + q) * 2) * 32;
      v[q][0] = _mm512_load_si512(src);
      v[q][1] = _mm512_load_si512(src + 32);
    }
    const int64_t k = k0 + 32 * ch;
    for (int r = 0; r < kRows; ++r) {
      const __m512i x0 = _mm512_loadu_si512(xd[r] + k);
      const __m512i x1 = _mm512_loadu_si512(xd[r] + k + 16);
      for (int q = 0; q < P; ++q) {
        const __m512 part =
            simd::DotBf16(simd::DotBf16(_mm512_setzero_ps(), x0, v[q][0]), x1, v[q][1]);
        sum[r][q] = _mm512_add_ps(sum[r][q], part);
      }
    }
  }
  for (int r = 0; r < kRows; ++r) {
    for (int q = 0; q < P; ++q) acc[r * kPairs + p0 + q] = sum[r][q];
  }
}

template <int kRows>
DSV4_TARGET_AVX512BF16 void ScaledPanelRowGroup(const uint16_t* panel, int64_t chunks, int64_t k0,
                                                const uint32_t* const* xd, __m512* acc) {
  constexpr int P = kPairs / 2;
  for (int p0 = 0; p0 < kPairs; p0 += P) ScaledPanelRows<kRows, P>(panel, chunks, k0, xd, p0, acc);
}

// All input rows over one tile with folded scales: per k-block the tile is decoded once into
// an L1 panel, then every group of kMaxScaledRows rows passes over it.
DSV4_TARGET_AVX512BF16 void ScaledTile(const LinearCall& call, int64_t t0, const uint32_t* wexp,
                                       const uint32_t* xd_all, int64_t count) {
  const LinearWeight& w = *call.w;
  const uint8_t* tile = w.fp4_tiles + (t0 / 16) * kPairs * w.in;
  const int64_t blocks = w.in / 64, kb = kScaledKBlock / 64;
  AlignedVector<uint16_t>& panel = call.scratch->panel_bf16;
  GrowTo(panel, kScaledKBlock / 32 * kPairs * 2 * 32);
  AlignedVector<float>& acc_store = call.scratch->panel;  // [rows][kPairs][16] lane sums
  GrowTo(acc_store, call.rows * kPairs * 16);
  __m512* acc = reinterpret_cast<__m512*>(acc_store.data());
  for (int64_t i = 0; i < call.rows * kPairs; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t b0 = 0; b0 < blocks; b0 += kb) {
    const int64_t b1 = std::min(blocks, b0 + kb);
    ScaledPanel(tile, wexp, w.in, b0, b1, panel.data());
    for (int64_t r0 = 0; r0 < call.rows; r0 += kMaxScaledRows) {
      const int rows = static_cast<int>(std::min<int64_t>(kMaxScaledRows, call.rows - r0));
      const uint32_t* xd[kMaxScaledRows];
      for (int r = 0; r < rows; ++r) xd[r] = xd_all + (r0 + r) * w.in;
      const int64_t chunks = 2 * (b1 - b0), k0 = 64 * b0;
      __m512* a = acc + r0 * kPairs;
      switch (rows) {
        case 1: ScaledPanelRowGroup<1>(panel.data(), chunks, k0, xd, a); break;
        case 2: ScaledPanelRowGroup<2>(panel.data(), chunks, k0, xd, a); break;
        case 3: ScaledPanelRowGroup<3>(panel.data(), chunks, k0, xd, a); break;
        default: ScaledPanelRowGroup<kMaxScaledRows>(panel.data(), chunks, k0, xd, a); break;
      }
    }
  }
  for (int64_t n = t0 + kTile; n < std::min(w.out, t0 + 2 * kTile); ++n) {  // the next scales
    for (int64_t i = 0; i < w.in / 32; i += 64) {
      _mm_prefetch(reinterpret_cast<const char*>(w.scales + n * (w.in / 32) + i), _MM_HINT_T1);
    }
  }
  const __m512i unzip = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
  for (int64_t r = 0; r < call.rows; ++r) {
    __m512 lanes[kPairs];
    for (int p = 0; p < kPairs; ++p) lanes[p] = _mm512_permutexvar_ps(unzip, acc[r * kPairs + p]);
    alignas(64) float out[kTile];
    _mm512_store_ps(out, simd::ReduceLanes16(lanes));
    BF16* y = call.y + r * w.out + t0;
    for (int64_t i = 0; i < count; ++i) y[i] = F32ToBf16(out[i]);
  }
}

}  // namespace

DSV4_TARGET_AVX512BF16 void LinearFp4TilesAvx512Bf16(const LinearCall& c, int64_t n0, int64_t n1) {
  const LinearWeight& w = *c.w;
  const bool nv = w.kind == LinearKind::kNvfp4Row16;
  // MXFP4: the scaled passes where every input scale is in range, at 1-kMaxRegsRows rows in
  // registers (ScaledTileRegs: the weight scale by an FMA per chunk), above over an L1 panel
  // with the weight scales folded into the decoded words (ScaledTile).
  bool scaled = !nv;
  for (int64_t i = 0; scaled && i < c.rows * (w.in / 128); ++i) {
    scaled = Fp4XScaleInRange(c.xscale[i]);
  }
  const bool panel = scaled && c.rows > kMaxRegsRows;
  // MXFP4: [kPairs][in/32][2]; NVFP4: [kPairs][in/16][2] (+ the tail of one 16-block store)
  AlignedVector<float>& wsp = c.scratch->fp4_scales;
  GrowTo(wsp, nv ? kTile * (w.in / 16) + 32 : kTile * (w.in / 32));
  AlignedVector<uint32_t>& xd = c.scratch->x_pairs;  // the input as RowsTileFp4Tiles reads it
  bool xd_ready = false;
  if (scaled) {
    GrowTo(c.scratch->x_pairs_scaled, c.rows * w.in);
    ScaledInputPairs(c, c.scratch->x_pairs_scaled.data());
    if (panel) GrowTo(c.scratch->fp4_exponents, kTile * (w.in / 32));
  }
  for (int64_t t0 = n0; t0 < n1; t0 += kTile) {
    const int64_t count = std::min<int64_t>(kTile, n1 - t0);
    if (panel) {
      uint32_t* wexp = c.scratch->fp4_exponents.data();
      if (ScaledTileExponents(w, t0, wexp)) {
        ScaledTile(c, t0, wexp, c.scratch->x_pairs_scaled.data(), count);
        continue;
      }
    }
    // MXFP4 outside the panel: the pair scales serve the register pass and the unscaled one.
    const bool pair_scales = !nv && !panel;
    if (pair_scales && TilePairScales(w, t0, wsp.data()) && scaled) {
      ScaledTileRegs(c, t0, wsp.data(), c.scratch->x_pairs_scaled.data(), count);
      continue;
    }
    if (!xd_ready) {
      // Input rows as [in/16][16] word pairs, each canonical lane's pair twice side by side.
      GrowTo(xd, c.rows * w.in);
      for (int64_t r = 0; r < c.rows; ++r) {
        for (int64_t k = 0; k < w.in; k += 16) {
          uint32_t pairs[8];
          simd::PairsFromF32(c.x + r * w.in + k, pairs);
          uint32_t* dst = xd.data() + r * w.in + k;
          for (int j = 0; j < 8; ++j) dst[2 * j] = dst[2 * j + 1] = pairs[j];
        }
      }
      xd_ready = true;
    }
    if (nv) {
      Nvfp4TilePairScales(w, t0, count, wsp.data());
      TileFp4Tiles<true>(c, t0, wsp.data(), xd.data(), count);
    } else {
      if (!pair_scales) TilePairScales(w, t0, wsp.data());
      TileFp4Tiles<false>(c, t0, wsp.data(), xd.data(), count);
    }
  }
}

}  // namespace dsv4::kernels::internal
