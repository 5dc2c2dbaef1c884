// AVX-512 indexer scan of V4 FP4 keys: the FP32 loop is indexer_tiles.inc over simd::Avx512
// (16 keys per tile, register p holding keys p and p + 8 as its two 8-lane halves, scored
// against two query heads at a time); the VDPBF16PS loop below (the tile of
// indexer_bf16_tile.h, shared with the V3.2 scan) takes every tile it can: the tile decoded
// register by register (no gathers, no layout permutes), the ReLU-weighted head term two
// heads at a time.
#define DSV4_VEC_TARGET DSV4_TARGET_AVX512
#include "kernels/cpu/indexer_tiles.inc"

#include "kernels/cpu/indexer_bf16_tile.h"

namespace dsv4::kernels::internal {
namespace {

using V = simd::Avx512;
constexpr int kKeys = V::kTile;
constexpr int kPairs = kKeys / 2;

// ---------------------------------------------------------------------------------------
// BF16 dot path. A key value is an E2M1 value times its block's power of two, so its BF16
// word is the E2M1 word with the exponent field moved; q is BF16 already. Products are exact
// (8 x 2 significant bits) and, under BlockIsSafe, every product and partial sum is an FP32
// normal (or zero), so VDPBF16PS rounds as the canonical multiply-then-add order.

// Whether a tile whose key scale exponents (unbiased) lie in [e_min, e_max] keeps every key
// value, product and partial sum FP32-normal and finite.
bool TileIsSafe(const IndexerPrepared& q, int e_min, int e_max) {
  if (q.q_exp_max >= 128 || q.q_exp_min <= -127) return false;  // NaN / inf / subnormal q
  if (e_min - 1 < -126 || e_max + 3 > 127) return false;        // key values 2^(e-1) .. 6*2^e
  if (q.q_exp_min > q.q_exp_max) return true;                   // q == 0: every product is 0
  // Products are multiples of 2^(q_min - 7) * 2^(e_min - 1); sums of 128 stay below
  // 128 * 2^(q_max + 1) * 6 * 2^e_max < 2^(q_max + e_max + 11).
  return q.q_exp_min - 7 + e_min - 1 >= -126 && q.q_exp_max + e_max + 11 <= 127;
}

// Constants of DecodeTileBf16.
struct TileDecodeConsts {
  __m512i ctrl[2];   // vpmultishiftqb bit offsets of register slot s (low byte of each word)
  __m512i table;     // BF16 words of the 16 E2M1 codes, twice (vpermw reads 5 index bits)
  __m512i spread[4]; // vpermw: word 8j + w of register m <- word m + 4j (key m + 4j's shift)
  __m512i code_bytes; // vpermb: low byte of word i <- byte 4i (key i's first code of four)
};

DSV4_TARGET_AVX512BF16 TileDecodeConsts MakeTileDecodeConsts() {
  TileDecodeConsts c;
  alignas(64) uint8_t ctrl[2][64];
  alignas(64) uint16_t table[32], spread[4][32];
  for (int s = 0; s < 2; ++s) {
    for (int t = 0; t < 64; ++t) {
      // Chunk dword d holds pair l = s + 2d: [value 8 + l | value l] as [low | high] word;
      // value v's nibble is bits 4v .. 4v+3 of the group's 8 bytes. The high byte of a word
      // is not read (vpermw takes index bits 0-4; bit 4, the next nibble's, picks the
      // table's copy).
      const int tt = t % 16, l = s + 2 * (tt / 4), word = (tt % 4) / 2;
      const int value = word == 0 ? 8 + l : l;
      ctrl[s][t] = static_cast<uint8_t>(4 * value);
    }
  }
  for (int i = 0; i < 32; ++i) {
    table[i] = static_cast<uint16_t>(simd::kE2M1Bf16Bytes[i % 16] |
                                     simd::kE2M1Bf16Bytes[16 + i % 16] << 8);
  }
  for (int m = 0; m < 4; ++m) {
    for (int i = 0; i < 32; ++i) spread[m][i] = static_cast<uint16_t>(m + 4 * (i / 8));
  }
  c.ctrl[0] = _mm512_load_si512(ctrl[0]);
  c.ctrl[1] = _mm512_load_si512(ctrl[1]);
  c.table = _mm512_load_si512(table);
  for (int m = 0; m < 4; ++m) c.spread[m] = _mm512_load_si512(spread[m]);
  alignas(64) uint8_t code_bytes[64];
  for (int t = 0; t < 64; ++t) code_bytes[t] = static_cast<uint8_t>(t < 32 ? 4 * (t / 2) : 0);
  c.code_bytes = _mm512_load_si512(code_bytes);
  return c;
}

// Dword i: codes(rows[i] + offset), the key's scale codes of up to four blocks.
template <class Codes>
DSV4_TARGET_AVX512BF16 __m512i CodesOfKeys(const uint8_t* const* rows, int64_t offset,
                                           const Codes& codes) {
  const auto c = [&](int i) { return static_cast<int>(codes(rows[i] + offset)); };
  return _mm512_set_epi32(c(15), c(14), c(13), c(12), c(11), c(10), c(9), c(8), c(7), c(6), c(5),
                          c(4), c(3), c(2), c(1), c(0));
}

// kb: the tile in the layout of indexer_bf16_tile.h, each register (g, s, m) decoded in
// place: its four chunks are keys m, m + 4, m + 8, m + 12, so one register holds the 16
// bytes of a scale block of those four keys, each group's 8 bytes copied to both qwords of
// its chunk, and each output word picks its nibble (vpmultishiftqb) and looks its BF16 word
// up (vpermw). *e_min, *e_max: the smallest and largest unbiased exponents (code - 127) of
// the tile's E8M0 key scales.
DSV4_TARGET_AVX512BF16 void DecodeTileBf16(const uint8_t* const* rows, int64_t dim,
                                           const TileDecodeConsts& c, uint32_t* kb, int* e_min,
                                           int* e_max) {
  const __m512i magnitude = _mm512_set1_epi16(0x7FFF);
  const int64_t scales = IndexerKeyFp4Layout{dim}.scales_offset();
  __m256i lo = _mm256_set1_epi16(32767), hi = _mm256_set1_epi16(-32768);
  __m512i codes = _mm512_setzero_si512();  // dword i: key i's scale codes of blocks 4c .. 4c+3
  for (int64_t block = 0; block < dim / 32; ++block) {  // the two value groups of a scale
    if (block % 4 == 0) {
      // Built from scalar loads: a vector load of the codes stored to memory would wait for
      // the 16 stores (no store forwarding).
      const int64_t count = std::min<int64_t>(4, dim / 32 - block);
      if (count == 4) {
        codes = CodesOfKeys(rows, scales + block, [](const uint8_t* src) {
          uint32_t v;
          __builtin_memcpy(&v, src, 4);
          return v;
        });
      } else {
        codes = CodesOfKeys(rows, scales + block, [count](const uint8_t* src) {
          uint32_t v = 0;
          for (int64_t b = 0; b < count; ++b) v |= uint32_t{src[b]} << (8 * b);
          return v;
        });
      }
    }
    // Scale 2^(s-127): s - 127 added to the exponent field of the nonzero words; word i: key i.
    const __m512i pick =
        _mm512_add_epi8(c.code_bytes, _mm512_set1_epi8(static_cast<char>(block % 4)));
    const __m256i code_words =
        _mm512_castsi512_si256(_mm512_maskz_permutexvar_epi8(0x55555555, pick, codes));
    const __m256i shifts =
        _mm256_slli_epi16(_mm256_sub_epi16(code_words, _mm256_set1_epi16(127)), 7);
    lo = _mm256_min_epi16(lo, shifts);
    hi = _mm256_max_epi16(hi, shifts);
    for (int m = 0; m < 4; ++m) {
      const auto bytes = [&](int i) {
        return _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[i] + 16 * block));
      };
      __m512i src = _mm512_castsi128_si512(bytes(m));
      src = _mm512_inserti32x4(src, bytes(m + 4), 1);
      src = _mm512_inserti32x4(src, bytes(m + 8), 2);
      src = _mm512_inserti32x4(src, bytes(m + 12), 3);
      const __m512i shift = _mm512_permutexvar_epi16(c.spread[m], _mm512_castsi256_si512(shifts));
      for (int half = 0; half < 2; ++half) {
        const __m512i group =
            half == 0 ? _mm512_unpacklo_epi64(src, src) : _mm512_unpackhi_epi64(src, src);
        uint32_t* out = kb + (2 * block + half) * bf16_tile::kGroupDwords + m * kKeys;
        for (int s = 0; s < 2; ++s) {
          const __m512i x =
              _mm512_permutexvar_epi16(_mm512_multishift_epi64_epi8(c.ctrl[s], group), c.table);
          _mm512_storeu_si512(out + 4 * s * kKeys,
                              _mm512_mask_add_epi16(x, _mm512_test_epi16_mask(x, magnitude), x,
                                                    shift));
        }
      }
    }
  }
  alignas(32) int16_t words[2][16];
  _mm256_store_si256(reinterpret_cast<__m256i*>(words[0]), lo);
  _mm256_store_si256(reinterpret_cast<__m256i*>(words[1]), hi);
  int a = words[0][0], b = words[1][0];
  for (int i = 1; i < 16; ++i) {
    a = std::min<int>(a, words[0][i]);
    b = std::max<int>(b, words[1][i]);
  }
  *e_min = a / 128;  // exact: multiples of 128
  *e_max = b / 128;
}

// Whether, in a tile that TileIsSafe passed, every nonzero product w_h * relu(bf16(dot)) is an
// FP32 normal and none is NaN: w finite, and w_min * 2^(q_min - 7) * 2^(e_min - 1) (the
// smallest nonzero dot is one product's granularity) at least 2^-126.
bool ProductIsNormal(const IndexerPrepared& q, int e_min) {
  return q.w_exp_max < 128 && q.w_exp_min + q.q_exp_min - 8 + e_min >= -126;
}

// Fp4HeadTerm for a tile that TileIsSafe passed: every dot is zero or an FP32 normal, so
// VCVTNEPS2BF16 (round to nearest even; it flushes subnormal inputs and quiets NaNs, neither
// of which occurs here) rounds it to BF16 exactly as RoundBf16 does, in fewer instructions.
// kNormalProduct (ProductIsNormal): the weighted term is rounded the same way. ReLU before
// the rounding: rounding is monotone and keeps 0, and no dot is NaN.
template <bool kNormalProduct>
struct SafeFp4HeadTerm {
  const float* w;  // [heads]
  DSV4_TARGET_AVX512BF16 static __m512 Bf16(__m512 x) {
    const __m256i words = reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(x));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(words), 16));
  }
  DSV4_TARGET_AVX512BF16 __m512 operator()(__m512 total, int64_t h, __m512 dot) const {
    const __m512 weighted = _mm512_mul_ps(_mm512_set1_ps(w[h]), Bf16(simd::Relu16(dot)));
    return _mm512_add_ps(total, kNormalProduct ? Bf16(weighted) : simd::RoundBf16x16(weighted));
  }
};

// SafeFp4HeadTerm<true> two heads at a time (the pending head's dot kept until the next
// comes), in fewer instructions: one VCVTNE2PS2BF16 rounds both heads' dots, a word permute
// puts key j's two BF16 dots in dword j ([head h - 1 | head h] as [low | high] word) and
// VPMAXSW applies ReLU to both words (a negative BF16 word is a negative int16; -0 becomes
// +0, which changes no sum: the running total starts at +0 and is never -0). VDPBF16PS
// against [w_h-1 | 0] and [0 | w_h] gives the two products exactly (BF16 x BF16 fits FP32,
// and ProductIsNormal keeps them normal or zero, so its input and output flushing never
// applies; the other word's product is a zero added first, which keeps the value, a -0
// product becoming +0 as above); a second VCVTNE2PS2BF16 and permute round them, and they
// are added in head order: every lane computes what SafeFp4HeadTerm<true> computes.
struct PairedFp4HeadTerm {
  const float* w;  // [heads]
  bool pending;
  __m512 held;  // the dot of head h - 1 when pending
  // BF16 of lo and hi, key j's in dword j as [lo's | hi's] (low | high word).
  DSV4_TARGET_AVX512BF16 static __m512i Interleave(__m512 lo, __m512 hi) {
    // word 2j: word j (lo's key j), word 2j + 1: word 16 + j (hi's key j)
    const __m512i index =
        _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22,
                         6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    return _mm512_permutexvar_epi16(index, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo)));
  }
  DSV4_TARGET_AVX512BF16 __m512 operator()(__m512 total, int64_t h, __m512 dot) {
    if (!pending) {
      held = dot;
      pending = true;
      return total;
    }
    pending = false;
    const __m512i relu = _mm512_max_epi16(Interleave(held, dot), _mm512_setzero_si512());
    // The FP32 bits of a BF16-valued w are [0 | w] as words; shifted, [w | 0].
    const __m512i w_hi = _mm512_castps_si512(_mm512_set1_ps(w[h]));
    const __m512i w_lo = _mm512_srli_epi32(_mm512_castps_si512(_mm512_set1_ps(w[h - 1])), 16);
    const __m512 p_lo = _mm512_dpbf16_ps(_mm512_setzero_ps(), reinterpret_cast<__m512bh>(relu),
                                         reinterpret_cast<__m512bh>(w_lo));
    const __m512 p_hi = _mm512_dpbf16_ps(_mm512_setzero_ps(), reinterpret_cast<__m512bh>(relu),
                                         reinterpret_cast<__m512bh>(w_hi));
    const __m512i terms = Interleave(p_lo, p_hi);
    const __m512i high = _mm512_set1_epi32(static_cast<int32_t>(0xFFFF0000u));
    total = _mm512_add_ps(total, _mm512_castsi512_ps(_mm512_slli_epi32(terms, 16)));
    return _mm512_add_ps(total, _mm512_castsi512_ps(_mm512_and_si512(terms, high)));
  }
  // The last head's term when the head count is odd.
  DSV4_TARGET_AVX512BF16 __m512 Finish(__m512 total, int64_t heads) const {
    return pending ? SafeFp4HeadTerm<true>{w}(total, heads - 1, held) : total;
  }
};

template <bool kNormalProduct>
DSV4_TARGET_AVX512BF16 __m512 ScoreTileBf16(const IndexerPrepared& q, const uint32_t* kb) {
  if constexpr (kNormalProduct) {
    PairedFp4HeadTerm term{q.w, false, _mm512_setzero_ps()};
    const __m512 total = bf16_tile::SumHeads(q.q_pairs, q.heads, q.dim, kb, term);
    return simd::RoundBf16x16(term.Finish(total, q.heads));
  } else {
    return simd::RoundBf16x16(bf16_tile::SumHeads(q.q_pairs, q.heads, q.dim, kb,
                                                  SafeFp4HeadTerm<false>{q.w}));
  }
}

}  // namespace

DSV4_TARGET_AVX512BF16 void IndexerScoresAvx512Bf16(std::span<const IndexerPrepared> qs,
                                                    const PagedRows& keys, int64_t begin,
                                                    int64_t end, float* scores, int64_t stride,
                                                    IndexerThreadScratch* scratch) {
  const int64_t dim = qs[0].dim;
  float* kb = GrowTo(scratch->kb, dim * kKeys);
  // Accessed through intrinsics only (they may alias any type).
  uint32_t* kb16 = reinterpret_cast<uint32_t*>(GrowTo(scratch->kb16, dim * kKeys));
  const TileDecodeConsts consts = MakeTileDecodeConsts();
  for (int64_t t0 = begin; t0 < end; t0 += kKeys) {
    const uint8_t* rows[kKeys];
    const int64_t count = TileKeys<V>(keys, t0, end, rows);
    PrefetchTile<V>(keys, t0 + kKeys, end);
    // The BF16 form decoded (with the scale range) when the first query that sees the tile
    // comes, the FP32 form when the first query that needs it comes.
    int e_min = 0, e_max = 0;
    bool have_bf16 = false, have_fp32 = false;
    for (size_t j = 0; j < qs.size(); ++j) {
      const IndexerPrepared& q = qs[j];
      const int64_t seen = TileKeysSeen(q.visible, t0, count);
      if (seen == 0) continue;
      if (!have_bf16) DecodeTileBf16(rows, dim, consts, kb16, &e_min, &e_max);
      have_bf16 = true;
      __m512 out;
      if (TileIsSafe(q, e_min, e_max)) {
        out = ProductIsNormal(q, e_min) ? ScoreTileBf16<true>(q, kb16)
                                        : ScoreTileBf16<false>(q, kb16);
      } else {
        if (!have_fp32) DecodeTileFp4<V>(rows, dim, kb);
        have_fp32 = true;
        out = ScoreTileFp4<V>(q, kb);
      }
      StoreScores<V>(scores + static_cast<int64_t>(j) * stride + (t0 - begin), out, seen);
    }
  }
}

DSV4_TARGET_AVX512 void IndexerScoresAvx512(std::span<const IndexerPrepared> qs,
                                            const PagedRows& keys, int64_t begin, int64_t end,
                                            float* scores, int64_t stride,
                                            IndexerThreadScratch* scratch) {
  IndexerScoresFp4Tiles<V>(qs, keys, begin, end, scores, stride, scratch);
}

}  // namespace dsv4::kernels::internal
