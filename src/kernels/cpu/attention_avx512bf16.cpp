// Attention over packed cache entries through VDPBF16PS (kernels/cpu/simd.h, "pair layout").
// Every entry value is BF16-exact: a nope value is an E4M3 code times its block's power of
// two (the E4M3 word with its exponent field moved), a RoPE value is BF16. q is BF16 and the
// softmax weights p are BF16-rounded, so every product is exact; when in addition every
// product and partial sum is an FP32 normal (checked from exponent ranges: per tile for the
// scores, per call for the values), VDPBF16PS rounds exactly as the canonical
// multiply-then-add order. Other tiles / calls take the FP32 loops of attention_avx512.cpp.
//
// Scores: 16 entries per tile as 8 registers (entries e and e + 8 in the two halves), two
// heads at a time, the 8-lane canonical order per (head, entry). Values: the weighted sum
// over entries j ascending is, per output column, a dot product over j: two entries j, j + 1
// interleaved per column (j in the high word, processed first) accumulate 16 columns per
// register; columns sit permuted in the accumulator (vpunpck order) until the end.
#include <algorithm>
#include <climits>
#include <cstring>
#include <vector>

#include "kernels/cpu/attention_internal.h"
#include "kernels/cpu/linear_internal.h"
#include "kernels/cpu/simd.h"  // its pragmas cover every SIMD function defined below

namespace dsv4::kernels::internal {
namespace {

constexpr int kTile = 16;       // entries per score tile
constexpr int kValueTile = 64;  // entries per value tile (each accumulator load / store
                                // serves 32 entry pairs)
constexpr int kBlockChunks = 4;  // 32-column chunks per value block: a tile's block of
                                 // interleaved rows is 16 KB and stays in the L1
constexpr int kPairs = 8;

// Exponent range of entry values: nonzero values are multiples of 2^grain and below 2^max.
struct Range {
  int grain = INT_MAX;
  int max = INT_MIN;
  bool ok = true;  // no subnormal, inf or NaN (scale code 255) anywhere
};

// Masked min / max of 16-bit lanes (no such reduce intrinsic for words): the masked-off
// lanes become the neutral element, then a word-wise tree.
DSV4_TARGET_AVX512BF16 inline int MaskedMinU16(__mmask32 m, __m512i v) {
  v = _mm512_mask_mov_epi16(_mm512_set1_epi16(-1), m, v);
  __m256i x = _mm256_min_epu16(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
  __m128i y = _mm_min_epu16(_mm256_castsi256_si128(x), _mm256_extracti128_si256(x, 1));
  return _mm_extract_epi16(_mm_minpos_epu16(y), 0);
}
DSV4_TARGET_AVX512BF16 inline int MaskedMaxU16(__mmask32 m, __m512i v) {
  // max(v) = 0xFFFF - min(0xFFFF - v).
  const __m512i inverted = _mm512_xor_si512(v, _mm512_set1_epi16(-1));
  return 0xFFFF - MaskedMinU16(m, inverted);
}

// The exponent range of `count` entries: min / max of their scale bytes and of the exponent
// fields of their nonzero RoPE words, lane-wise over the entries, reduced once.
DSV4_TARGET_AVX512BF16 Range TileRange(const AttnRows& r, const uint8_t* const* rows,
                                       int64_t count) {
  const KvEntryLayout layout = r.entry();
  const int64_t blocks = r.d_nope / 64;
  __m128i scale_lo = _mm_set1_epi8(-1), scale_hi = _mm_setzero_si128();
  __m512i rope_lo = _mm512_set1_epi16(-1), rope_hi = _mm512_setzero_si512();
  const __m512i magnitude = _mm512_set1_epi16(0x7FFF), field_mask = _mm512_set1_epi16(0xFF);
  for (int64_t i = 0; i < count; ++i) {
    const uint8_t* e = rows[i];
    for (int64_t b = 0; b < blocks; b += 16) {
      const __mmask16 m = simd::FirstLanes16(blocks - b);
      const __m128i v = _mm_maskz_loadu_epi8(m, e + layout.scales_offset() + b);
      scale_lo = _mm_mask_min_epu8(scale_lo, m, scale_lo, v);
      scale_hi = _mm_mask_max_epu8(scale_hi, m, scale_hi, v);
    }
    const uint8_t* rope = e + layout.rope_offset();
    for (int64_t k = 0; k < r.rope_dim; k += 32) {
      const __m512i w = _mm512_loadu_si512(rope + 2 * k);
      const __mmask32 nonzero = _mm512_test_epi16_mask(w, magnitude);
      const __m512i field = _mm512_and_si512(_mm512_srli_epi16(w, 7), field_mask);
      rope_lo = _mm512_mask_min_epu16(rope_lo, nonzero, rope_lo, field);
      rope_hi = _mm512_mask_max_epu16(rope_hi, nonzero, rope_hi, field);
    }
  }
  Range range;
  alignas(16) uint8_t lo_bytes[16], hi_bytes[16];
  _mm_store_si128(reinterpret_cast<__m128i*>(lo_bytes), scale_lo);
  _mm_store_si128(reinterpret_cast<__m128i*>(hi_bytes), scale_hi);
  int scale_min = 255, scale_max = 0;
  for (int64_t b = 0; b < std::min<int64_t>(blocks, 16); ++b) {
    scale_min = std::min<int>(scale_min, lo_bytes[b]);
    scale_max = std::max<int>(scale_max, hi_bytes[b]);
  }
  if (blocks > 0) {
    // Codes are multiples of 2^-9 below 2^9; scale byte 255 is NaN.
    if (scale_max == 255) range.ok = false;
    range.grain = scale_min - 127 - 9;
    range.max = scale_max - 127 + 9;
  }
  const int lo = MaskedMinU16(~__mmask32{0}, rope_lo);
  const int hi = MaskedMaxU16(~__mmask32{0}, rope_hi);
  if (lo <= hi) {  // some nonzero RoPE word (rope_lo starts at 0xFFFF, rope_hi at 0)
    if (lo == 0 || hi == 255) range.ok = false;
    range.grain = std::min(range.grain, lo - 127 - 7);
    range.max = std::max(range.max, hi - 127 + 1);
  }
  return range;
}

// Exponent range of nonzero BF16 words (min > max if all zero); ok false for subnormal / inf.
struct WordRange {
  int min = INT_MAX;
  int max = INT_MIN;
  bool ok = true;
};
// The WordRange of the high words of x FP32 [count] (BF16 values: the query, the softmax
// weights), 16 at a time: exponent fields of the nonzero words; subnormal / inf / NaN words
// clear ok.
DSV4_TARGET_AVX512BF16 WordRange WeightRange(const float* p, int64_t count) {
  const __m512i magnitude = _mm512_set1_epi32(0x7FFF0000), field_mask = _mm512_set1_epi32(0xFF);
  __m512i lo = _mm512_set1_epi32(INT_MAX), hi = _mm512_set1_epi32(INT_MIN);
  __mmask16 bad = 0;
  for (int64_t i = 0; i < count; i += 16) {
    const __mmask16 tail = simd::FirstLanes16(count - i);
    const __m512i u = _mm512_maskz_loadu_epi32(tail, p + i);
    const __mmask16 nonzero = _mm512_mask_test_epi32_mask(tail, u, magnitude);
    const __m512i field = _mm512_and_si512(_mm512_srli_epi32(u, 23), field_mask);
    bad |= _mm512_mask_cmpeq_epi32_mask(nonzero, field, _mm512_setzero_si512()) |
           _mm512_mask_cmpeq_epi32_mask(nonzero, field, field_mask);
    lo = _mm512_mask_min_epi32(lo, nonzero, lo, field);
    hi = _mm512_mask_max_epi32(hi, nonzero, hi, field);
  }
  WordRange r;
  const int min_field = _mm512_reduce_min_epi32(lo), max_field = _mm512_reduce_max_epi32(hi);
  if (min_field <= max_field) {  // some nonzero word
    r.min = min_field - 127;
    r.max = max_field - 127;
  }
  r.ok = bad == 0;
  return r;
}

// Whether a factor with nonzero exponents in [a.min, a.max] (8 significant bits) times entry
// values of `range`, summed over `terms` products, stays exact and FP32-normal.
bool ProductsSafe(const WordRange& a, const Range& range, int64_t terms) {
  if (!a.ok || !range.ok || range.grain < -126) return false;
  if (a.min > a.max) return true;  // the factor is all zero
  int log_terms = 0;
  while ((int64_t{1} << log_terms) < terms) ++log_terms;
  return a.min - 7 + range.grain >= -126 && a.max + 1 + range.max + log_terms <= 127;
}

// Every cache line of `count` entries of `bytes` each.
inline void PrefetchEntries(const uint8_t* const* entries, int64_t count, int64_t bytes) {
  for (int64_t i = 0; i < count; ++i) {
    for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch(entries[i] + b);
    __builtin_prefetch(entries[i] + bytes - 1);
  }
}

// Part `part` of `parts` of PrefetchEntries' requests (in its order). Gathered entries are
// apart in memory, so their lines miss every cache and the hardware prefetchers cannot follow
// the pointers; requesting a whole tile at once fills the miss buffers and stalls the
// prefetch instructions themselves, so the requests for the next tile are spread over the
// current tile's head pairs.
inline void PrefetchEntriesPart(const uint8_t* const* entries, int64_t count, int64_t bytes,
                                int64_t part, int64_t parts) {
  const int64_t slots = (bytes + 63) / 64 + 1;  // the lines from each 64 B step, the last byte
  const int64_t begin = count * slots * part / parts, end = count * slots * (part + 1) / parts;
  for (int64_t t = begin; t < end; ++t) {
    const int64_t slot = t % slots;
    __builtin_prefetch(entries[t / slots] + (slot + 1 < slots ? 64 * slot : bytes - 1));
  }
}

// The next tile's entries: what the current tile's head pairs prefetch.
struct NextTile {
  const uint8_t* const* rows;
  int64_t count;  // 0 for the last tile
  int64_t bytes;  // per entry
};

struct Consts {
  simd::E4M3PairConsts e4m3;
  simd::RowSpreads spreads;
};

// Entry e's 32 values [k0, k0 + 32) as BF16 words through `spread` (bytes for the nope part,
// words for the RoPE part, both selecting from the 32 values).
DSV4_TARGET_AVX512BF16 __m512i EntryWords(const AttnRows& r, const uint8_t* e, int64_t k0,
                                          bool pairs, const Consts& c) {
  if (k0 < r.d_nope) {
    const __m256i codes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(e + k0));
    const __m512i v = simd::E4M3WordsBf16(
        codes, pairs ? c.spreads.pairs2_bytes : c.spreads.natural_bytes, c.e4m3);
    const int16_t delta =
        static_cast<int16_t>((e[r.entry().scales_offset() + k0 / 64] - 127) * 128);
    return simd::ScaleBf16Words(v, _mm512_set1_epi16(delta));
  }
  const __m512i words = _mm512_loadu_si512(e + r.entry().rope_offset() + 2 * (k0 - r.d_nope));
  return pairs ? _mm512_permutexvar_epi16(c.spreads.pairs2_words, words) : words;
}

// kb BF16 [d/16][kPairs][32]: group g of entries p (low half) and p + 8 (high half).
DSV4_TARGET_AVX512BF16 void DecodeScoreTile(const AttnRows& r, const uint8_t* const* rows,
                                            const Consts& c, uint16_t* kb) {
  for (int i = 0; i < kTile; ++i) {
    for (int64_t k0 = 0; k0 < r.d; k0 += 32) {
      const __m512i v = EntryWords(r, rows[i], k0, true, c);  // groups k0/16 and k0/16 + 1
      uint16_t* dst = kb + ((k0 / 16) * kPairs + i % 8) * 32 + (i / 8) * 16;
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), _mm512_castsi512_si256(v));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + kPairs * 32),
                          _mm512_extracti64x4_epi64(v, 1));
    }
  }
}

// The scores of 16 decoded entries for heads [h0, h1): acc pairs as in the indexer.
DSV4_TARGET_AVX512BF16 void ScoreTile(const AttnCall& c, const uint32_t* q_pairs, int64_t heads,
                                      const uint16_t* kb, const NextTile& next,
                                      int64_t count, int64_t n,
                                      float* s /* [heads][n] at the tile's first entry */) {
  const __mmask16 tail = simd::FirstLanes16(count);
  const int64_t groups = c.rows.d / 16;
  const __m512 scale = _mm512_set1_ps(c.scale);
  for (int64_t h = 0; h < heads; h += 2) {
    PrefetchEntriesPart(next.rows, next.count, next.bytes, h / 2, (heads + 1) / 2);
    const int64_t h1 = std::min(h + 1, heads - 1);  // an odd last head pairs with itself
    __m512 a0[kPairs], a1[kPairs];
#pragma GCC unroll 8
    for (int p = 0; p < kPairs; ++p) a0[p] = a1[p] = _mm512_setzero_ps();
    for (int64_t g = 0; g < groups; ++g) {
      const __m512i qa = _mm512_broadcast_i64x4(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q_pairs + (h * groups + g) * 8)));
      const __m512i qb = _mm512_broadcast_i64x4(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q_pairs + (h1 * groups + g) * 8)));
      // The next head pair's query (1 KB per head, each line used once per tile: the L1
      // does not keep all heads' queries next to the tile).
      if (h + 3 < heads) {
        _mm_prefetch(reinterpret_cast<const char*>(q_pairs + ((h + 2) * groups + g) * 8),
                     _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(q_pairs + ((h + 3) * groups + g) * 8),
                     _MM_HINT_T0);
      }
      const uint16_t* k = kb + g * kPairs * 32;
#pragma GCC unroll 8
      for (int p = 0; p < kPairs; ++p) {
        const __m512i kv = _mm512_loadu_si512(k + 32 * p);
        a0[p] = simd::DotBf16(a0[p], qa, kv);
        a1[p] = simd::DotBf16(a1[p], qb, kv);
      }
    }
    // For an odd last head h1 == h: both stores write the same scores.
    _mm512_mask_storeu_ps(s + h * n, tail, _mm512_mul_ps(simd::ReduceLanes16(a0), scale));
    _mm512_mask_storeu_ps(s + h1 * n, tail, _mm512_mul_ps(simd::ReduceLanes16(a1), scale));
  }
}

// One tile's interleaved rows and two heads' weight pairs.
struct ValuePass {
  const uint16_t* vb;  // [kValueTile/2][chunks][2][32] (chunks of the block)
  int64_t chunks;
  int64_t used_pairs;
  const uint32_t* w0;  // [kValueTile/2] weight pairs of head 0 and head 1
  const uint32_t* w1;
};

// Accumulator registers m0 .. m0 + kRegs - 1 of both heads (kRegs a compile-time count so
// that they stay in registers).
template <int kRegs>
DSV4_TARGET_AVX512BF16 void ValueRegs(const ValuePass& v, int64_t m0, float* a0, float* a1) {
  __m512 x0[kRegs], x1[kRegs];
#pragma GCC unroll 8
  for (int r = 0; r < kRegs; ++r) {
    x0[r] = _mm512_loadu_ps(a0 + (m0 + r) * 16);
    x1[r] = _mm512_loadu_ps(a1 + (m0 + r) * 16);
  }
  for (int64_t jp = 0; jp < v.used_pairs; ++jp) {
    const __m512i w0 = _mm512_set1_epi32(static_cast<int>(v.w0[jp]));
    const __m512i w1 = _mm512_set1_epi32(static_cast<int>(v.w1[jp]));
    const uint16_t* src = v.vb + jp * v.chunks * 64 + m0 * 32;
#pragma GCC unroll 8
    for (int r = 0; r < kRegs; ++r) {
      const __m512i kv = _mm512_loadu_si512(src + 32 * r);
      x0[r] = simd::DotBf16(x0[r], w0, kv);
      x1[r] = simd::DotBf16(x1[r], w1, kv);
    }
  }
  // For an odd last head a1 == a0 and x1 == x0: the store order keeps it right.
#pragma GCC unroll 8
  for (int r = 0; r < kRegs; ++r) {
    _mm512_storeu_ps(a1 + (m0 + r) * 16, x1[r]);
    _mm512_storeu_ps(a0 + (m0 + r) * 16, x0[r]);
  }
}

// Chunks [m_begin, m_begin + block_chunks) of `count` entries into vb BF16
// [(count + 1) / 2][block_chunks][2][32]: entries 2jp + 1 (low words) and 2jp (high) per column
// as unpacklo / unpackhi registers. Out of line: its constants keep their registers apart from
// the value loops' accumulators.
DSV4_TARGET_AVX512BF16 __attribute__((noinline)) void DecodeValueBlock(
    const AttnRows& r, const uint8_t* const* entries, int64_t count, int64_t m_begin,
    int64_t block_chunks, const Consts& consts, uint16_t* vb) {
  for (int64_t jp = 0; 2 * jp < count; ++jp) {
    const uint8_t* first_entry = entries[2 * jp];
    const uint8_t* later_entry = 2 * jp + 1 < count ? entries[2 * jp + 1] : nullptr;
    for (int64_t mm = 0; mm < block_chunks; ++mm) {
      const int64_t m = m_begin + mm;
      // Past the tile's end: value 0 (its weight is 0 too).
      const __m512i later = later_entry != nullptr
                                ? EntryWords(r, later_entry, 32 * m, false, consts)
                                : _mm512_setzero_si512();
      const __m512i first = EntryWords(r, first_entry, 32 * m, false, consts);
      uint16_t* dst = vb + (jp * block_chunks + mm) * 64;
      _mm512_storeu_si512(dst, _mm512_unpacklo_epi16(later, first));
      _mm512_storeu_si512(dst + 32, _mm512_unpackhi_epi16(later, first));
    }
  }
}

}  // namespace

DSV4_TARGET_AVX512BF16 void AttnScoresAvx512Bf16(const AttnCall& c, int64_t h0, int64_t h1,
                                                 float* s, AttnPassState* st,
                                                 AttnThreadScratch* scratch) {
  const AttnRows& r = c.rows;
  const int64_t n = r.n, d = r.d, heads = h1 - h0, groups = d / 16;
  Consts consts;
  consts.e4m3 = simd::MakeE4M3PairConsts();
  consts.spreads = simd::MakeRowSpreads();
  // q in pair layout (exact: q holds BF16 values) and its exponent range.
  std::vector<uint32_t>& q_pairs = scratch->q_pairs;
  std::vector<uint16_t>& kb = scratch->kb;
  q_pairs.resize(static_cast<size_t>(heads * d / 2));
  const WordRange qr = WeightRange(c.q + h0 * d, heads * d);
  // Pair j of group g: [q[16g + j] | q[16g + 8 + j]] as BF16 words (high | low).
  const __m512i high_words = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
  for (int64_t i = 0; i < heads * groups; ++i) {
    const __m512i v = _mm512_loadu_si512(c.q + h0 * d + 16 * i);
    const __m256i lo = _mm512_extracti64x4_epi64(_mm512_srli_epi32(v, 16), 1);
    const __m256i hi = _mm512_castsi512_si256(_mm512_and_si512(v, high_words));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q_pairs.data() + 8 * i),
                        _mm256_or_si256(lo, hi));
  }
  kb.resize(static_cast<size_t>(d * kTile));
  Range all;  // every entry, for pass 2
  // Gathered entries sit anywhere in the cache: the hardware prefetchers cannot follow the
  // pointers, so the next tile's entries are requested while this one is scored.
  const int64_t entry_bytes = r.entry().bytes();
  PrefetchEntries(r.packed, std::min<int64_t>(kTile, n), entry_bytes);
  for (int64_t j0 = 0; j0 < n; j0 += kTile) {
    const int64_t count = std::min<int64_t>(kTile, n - j0);
    const NextTile next{r.packed + j0 + kTile,
                        std::min<int64_t>(kTile, std::max<int64_t>(n - j0 - kTile, 0)),
                        entry_bytes};
    const uint8_t* rows[kTile];  // a partial tile repeats its last entry
    for (int i = 0; i < kTile; ++i) rows[i] = r.packed[j0 + std::min<int64_t>(i, count - 1)];
    const Range tile = TileRange(r, rows, count);
    all.grain = std::min(all.grain, tile.grain);
    all.max = std::max(all.max, tile.max);
    all.ok = all.ok && tile.ok;
    if (!ProductsSafe(qr, tile, d)) {
      PrefetchEntries(next.rows, next.count, entry_bytes);
      AttnScoresRangeAvx512(c, h0, h1, j0, j0 + count, s, scratch);
      continue;
    }
    DecodeScoreTile(r, rows, consts, kb.data());
    ScoreTile(c, q_pairs.data(), heads, kb.data(), next, count, n, s + j0);
  }
  st->bf16_rows = all.ok;
  st->grain_exp = all.grain;
  st->max_exp = all.max;
}

DSV4_TARGET_AVX512BF16 void AttnValuesAvx512Bf16(const AttnCall& c, int64_t h0, int64_t h1,
                                                 const float* p, float* acc,
                                                 const AttnPassState& st,
                                                 AttnThreadScratch* scratch) {
  const AttnRows& r = c.rows;
  const int64_t n = r.n, d = r.d, heads = h1 - h0, chunks = d / 32;
  // The weights: BF16 values in [0, 1] (or NaN) whose products with the rows must be safe.
  const WordRange pr = WeightRange(p, heads * n);
  Range rows_range;
  rows_range.grain = st.grain_exp;
  rows_range.max = st.max_exp;
  rows_range.ok = st.bf16_rows;
  if (!ProductsSafe(pr, rows_range, n)) {
    AttnValuesAvx512(c, h0, h1, p, acc, st, scratch);
    return;
  }
  Consts consts;
  consts.e4m3 = simd::MakeE4M3PairConsts();
  consts.spreads = simd::MakeRowSpreads();
  // A tile's rows go block by block of kBlockChunks chunks (128 columns): vb BF16
  // [kValueTile/2][block chunks][2][32]: entries 2jp + 1 (low words) and 2jp (high) per
  // column, for the 32 columns of chunk m as unpacklo / unpackhi registers, decoded straight
  // into that order. accp FP32 [heads][chunks][2][16]: columns in that register order.
  std::vector<uint16_t>& vb = scratch->vb;
  std::vector<float>& accp = scratch->accp;
  std::vector<uint32_t>& pp_all = scratch->pp_all;  // [heads][kValueTile/2] a tile's weight pairs
  pp_all.resize(static_cast<size_t>(heads * (kValueTile / 2)));
  static_assert(kValueTile == 64, "two permutes per head make a tile's weight pairs");
  uint16_t pair_index[32];
  for (int i = 0; i < 32; ++i) pair_index[i] = static_cast<uint16_t>(i % 2 == 0 ? 2 * i + 3 : 2 * i - 1);
  const __m512i pair_words = _mm512_loadu_si512(pair_index);
  vb.resize(static_cast<size_t>(kValueTile * 32 * kBlockChunks));
  accp.assign(static_cast<size_t>(heads * d), 0.0f);
  const int64_t blocks = (chunks + kBlockChunks - 1) / kBlockChunks;
  // The entries have left the caches since pass 1 (on this thread's heads, pass 1 touched
  // more than the L2 holds): the first tile's are requested now, each later tile's over the
  // previous tile's (block, head pair) passes.
  const int64_t entry_bytes = r.entry().bytes();
  PrefetchEntries(r.packed, std::min<int64_t>(kValueTile, n), entry_bytes);
  for (int64_t j0 = 0; j0 < n; j0 += kValueTile) {
    const int64_t count = std::min<int64_t>(kValueTile, n - j0);
    const int64_t used_pairs = (count + 1) / 2;
    const NextTile next{r.packed + j0 + kValueTile,
                        std::min<int64_t>(kValueTile, std::max<int64_t>(n - j0 - kValueTile, 0)),
                        entry_bytes};
    // Weight pairs: [p_{j+1} | p_j] as BF16 words (the value past the tile's end is 0): word
    // 2i is the high word of p_{2i+1} (word 4i + 3 of 32 weights), word 2i + 1 that of p_{2i}
    // (word 4i + 1); one permute per 32 weights.
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t half = 0; half < 2; ++half) {
        const int64_t left = count - 32 * half;
        const __mmask16 lo = simd::FirstLanes16(std::max<int64_t>(left, 0));
        const __mmask16 hi = simd::FirstLanes16(std::max<int64_t>(left - 16, 0));
        const float* ph = p + h * n + j0 + 32 * half;
        const __m512i a = _mm512_castps_si512(_mm512_maskz_loadu_ps(lo, ph));
        const __m512i b = _mm512_castps_si512(_mm512_maskz_loadu_ps(hi, ph + 16));
        _mm512_storeu_si512(pp_all.data() + h * (kValueTile / 2) + 16 * half,
                            _mm512_permutex2var_epi16(a, pair_words, b));
      }
    }
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t m_begin = blk * kBlockChunks;
      const int64_t block_chunks = std::min<int64_t>(kBlockChunks, chunks - m_begin);
      DecodeValueBlock(r, r.packed + j0, count, m_begin, block_chunks, consts, vb.data());
      // Two heads per pass over the interleaved rows (an odd last head pairs with itself).
      const int64_t head_pairs = (heads + 1) / 2;
      for (int64_t h = 0; h < heads; h += 2) {
        PrefetchEntriesPart(next.rows, next.count, next.bytes, blk * head_pairs + h / 2,
                            blocks * head_pairs);
        const int64_t h1 = std::min(h + 1, heads - 1);
        const ValuePass pass{vb.data(), block_chunks, used_pairs,
                             pp_all.data() + h * (kValueTile / 2),
                             pp_all.data() + h1 * (kValueTile / 2)};
        float* a0 = accp.data() + h * d + 32 * m_begin;
        float* a1 = accp.data() + h1 * d + 32 * m_begin;
        int64_t m0 = 0;  // register index in the block (2 per 32 columns)
        if (block_chunks == 4) {
          ValueRegs<8>(pass, m0, a0, a1);
          continue;
        }
        if (m0 + 4 <= 2 * block_chunks) {
          ValueRegs<4>(pass, m0, a0, a1);
          m0 += 4;
        }
        if (m0 < 2 * block_chunks) ValueRegs<2>(pass, m0, a0, a1);
      }
    }
  }
  // Back to column order: register (m, half) lane 4L + i holds column 32m + 8L + 4half + i.
  // Columns 32m + [0, 16) are lanes 0-3 of (m, 0), 0-3 of (m, 1), 4-7 of (m, 0), 4-7 of (m, 1);
  // columns 32m + [16, 32) the same from lanes 8-15.
  const __m512i first = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
  const __m512i second =
      _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t m = 0; m < chunks; ++m) {
      const __m512 r0 = _mm512_loadu_ps(accp.data() + h * d + (2 * m) * 16);
      const __m512 r1 = _mm512_loadu_ps(accp.data() + h * d + (2 * m + 1) * 16);
      _mm512_storeu_ps(acc + h * d + 32 * m, _mm512_permutex2var_ps(r0, first, r1));
      _mm512_storeu_ps(acc + h * d + 32 * m + 16, _mm512_permutex2var_ps(r0, second, r1));
    }
  }
}

}  // namespace dsv4::kernels::internal
