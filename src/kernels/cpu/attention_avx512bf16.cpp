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

#include "core/check.h"
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

using Range = AttnRowsRange;
using WordRange = AttnWordRange;

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

// The bytes of an entry that a pass reads, as the offsets of one request per cache line: every
// 64th byte of each span and its last byte (entries need not start on a line).
struct EntryLines {
  static constexpr int kMax = 24;
  int64_t offset[kMax];
  int64_t count = 0;
  void Add(int64_t begin, int64_t end) {  // bytes [begin, end), if any
    if (begin >= end) return;
    DSV4_CHECK(count + (end - begin + 63) / 64 + 1 <= kMax);
    for (int64_t o = begin; o < end; o += 64) offset[count++] = o;
    offset[count++] = end - 1;
  }
};

// The whole entry (the score pass).
EntryLines WholeEntry(const AttnRows& r) {
  EntryLines lines;
  lines.Add(0, r.entry().bytes());
  return lines;
}

// The bytes of columns [k0, k1) (the value pass over a column range): E4M3 codes, their block
// scales, RoPE words.
EntryLines EntryColumns(const AttnRows& r, int64_t k0, int64_t k1) {
  const KvEntryLayout layout = r.entry();
  EntryLines lines;
  const int64_t nope_end = std::min(k1, r.d_nope);
  if (k0 < nope_end) {
    lines.Add(k0, nope_end);
    lines.Add(layout.scales_offset() + k0 / 64, layout.scales_offset() + (nope_end + 63) / 64);
  }
  const int64_t rope_begin = std::max(k0, r.d_nope);
  if (rope_begin < k1) {
    lines.Add(layout.rope_offset() + 2 * (rope_begin - r.d_nope),
              layout.rope_offset() + 2 * (k1 - r.d_nope));
  }
  return lines;
}

// Every line of `count` entries.
inline void PrefetchEntries(const uint8_t* const* entries, int64_t count,
                            const EntryLines& lines) {
  for (int64_t i = 0; i < count; ++i) {
    for (int64_t l = 0; l < lines.count; ++l) __builtin_prefetch(entries[i] + lines.offset[l]);
  }
}

// PrefetchEntries' requests (in its order) a few at a time. Gathered entries are apart in
// memory, so their lines miss every cache and the hardware prefetchers cannot follow the
// pointers; requesting a whole tile at once fills the miss buffers and stalls the prefetch
// instructions themselves, so the requests for the next tile are spread over the current
// tile's passes: `parts` calls of Next() issue them all (no division per request).
class PrefetchCursor {
 public:
  PrefetchCursor(const uint8_t* const* entries, int64_t count, const EntryLines& lines,
                 int64_t parts)
      : entries_(entries),
        lines_(&lines),
        left_(count * lines.count),
        per_part_((count * lines.count + parts - 1) / parts) {}
  void Next() {
    for (int64_t k = 0; k < per_part_ && left_ > 0; ++k, --left_) {
      __builtin_prefetch(entries_[entry_] + lines_->offset[slot_]);
      if (++slot_ == lines_->count) {
        slot_ = 0;
        ++entry_;
      }
    }
  }

 private:
  const uint8_t* const* entries_;
  const EntryLines* lines_;
  int64_t left_, per_part_;
  int64_t entry_ = 0, slot_ = 0;
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

// The scores of 16 decoded entries for heads [0, heads): acc pairs as in the indexer. Out of
// line: inlined next to the decoding, its accumulators spill.
DSV4_TARGET_AVX512BF16 __attribute__((noinline)) void ScoreTile(const AttnCall& c, const uint32_t* q_pairs, int64_t heads,
                                      const uint16_t* kb, PrefetchCursor* next,
                                      int64_t count, int64_t n,
                                      float* s /* [heads][n] at the tile's first entry */) {
  const __mmask16 tail = simd::FirstLanes16(count);
  const int64_t groups = c.rows.d / 16;
  const __m512 scale = _mm512_set1_ps(c.scale);
  for (int64_t h = 0; h < heads; h += 2) {
    next->Next();  // the next tile's entries, over the head pairs
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

DSV4_TARGET_AVX512BF16 AttnWordRange AttnQueryPairsAvx512Bf16(const float* q, int64_t heads,
                                                              int64_t d, uint32_t* q_pairs) {
  // Pair j of group g: [q[16g + j] | q[16g + 8 + j]] as BF16 words (high | low); exact, q
  // holds BF16 values.
  const __m512i high_words = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
  for (int64_t i = 0; i < heads * d / 16; ++i) {
    const __m512i v = _mm512_loadu_si512(q + 16 * i);
    const __m256i lo = _mm512_extracti64x4_epi64(_mm512_srli_epi32(v, 16), 1);
    const __m256i hi = _mm512_castsi512_si256(_mm512_and_si512(v, high_words));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q_pairs + 8 * i), _mm256_or_si256(lo, hi));
  }
  return WeightRange(q, heads * d);
}

DSV4_TARGET_AVX512BF16 void AttnScoresEntriesAvx512Bf16(const AttnCall& c, int64_t heads,
                                                        const uint32_t* q_pairs,
                                                        const AttnWordRange& qr, int64_t j0,
                                                        int64_t j1, float* s,
                                                        AttnRowsRange* range,
                                                        AttnThreadScratch* scratch) {
  const AttnRows& r = c.rows;
  const int64_t n = r.n, d = r.d;
  Consts consts;
  consts.e4m3 = simd::MakeE4M3PairConsts();
  consts.spreads = simd::MakeRowSpreads();
  std::vector<uint16_t>& kb = scratch->kb;
  kb.resize(static_cast<size_t>(d * kTile));
  // Gathered entries sit anywhere in the cache: the hardware prefetchers cannot follow the
  // pointers, so the next tile's entries are requested while this one is scored.
  const EntryLines lines = WholeEntry(r);
  PrefetchEntries(r.packed + j0, std::min<int64_t>(kTile, j1 - j0), lines);
  for (int64_t jt = j0; jt < j1; jt += kTile) {
    const int64_t count = std::min<int64_t>(kTile, j1 - jt);
    const int64_t next_count = std::min<int64_t>(kTile, std::max<int64_t>(j1 - jt - kTile, 0));
    const uint8_t* rows[kTile];  // a partial tile repeats its last entry
    for (int i = 0; i < kTile; ++i) rows[i] = r.packed[jt + std::min<int64_t>(i, count - 1)];
    const Range tile = TileRange(r, rows, count);
    range->Merge(tile);
    if (!ProductsSafe(qr, tile, d)) {
      PrefetchEntries(r.packed + jt + kTile, next_count, lines);
      AttnScoresRangeAvx512(c, 0, heads, jt, jt + count, s, scratch);
      continue;
    }
    DecodeScoreTile(r, rows, consts, kb.data());
    PrefetchCursor next(r.packed + jt + kTile, next_count, lines, (heads + 1) / 2);
    ScoreTile(c, q_pairs, heads, kb.data(), &next, count, n, s + jt);
  }
}

DSV4_TARGET_AVX512BF16 AttnWordRange AttnWeightPairsAvx512Bf16(const float* p, int64_t heads,
                                                               int64_t n, uint32_t* w) {
  static_assert(kValueTile == 64, "two permutes per head make a tile's weight pairs");
  // Pair i: [p_{2i+1} | p_{2i}] as BF16 words: word 2i is the high word of p_{2i+1} (word
  // 4i + 3 of 32 weights), word 2i + 1 that of p_{2i} (word 4i + 1); one permute per 32
  // weights.
  uint16_t pair_index[32];
  for (int i = 0; i < 32; ++i) pair_index[i] = static_cast<uint16_t>(i % 2 == 0 ? 2 * i + 3 : 2 * i - 1);
  const __m512i pair_words = _mm512_loadu_si512(pair_index);
  const int64_t tiles = (n + kValueTile - 1) / kValueTile;
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t half = 0; half < 2 * tiles; ++half) {
      const int64_t left = n - 32 * half;  // past n: weight 0
      const __mmask16 lo = simd::FirstLanes16(std::max<int64_t>(left, 0));
      const __mmask16 hi = simd::FirstLanes16(std::max<int64_t>(left - 16, 0));
      const float* ph = p + h * n + 32 * half;
      const __m512i a = _mm512_castps_si512(_mm512_maskz_loadu_ps(lo, ph));
      const __m512i b = _mm512_castps_si512(_mm512_maskz_loadu_ps(hi, ph + 16));
      _mm512_storeu_si512(w + h * tiles * (kValueTile / 2) + 16 * half,
                          _mm512_permutex2var_epi16(a, pair_words, b));
    }
  }
  return WeightRange(p, heads * n);
}

bool AttnValuesExactBf16(const AttnWordRange& pr, const AttnRowsRange& rows, int64_t n) {
  return ProductsSafe(pr, rows, n);
}

DSV4_TARGET_AVX512BF16 void AttnValuesColumnsAvx512Bf16(const AttnCall& c, int64_t heads,
                                                        const uint32_t* w, int64_t m0,
                                                        int64_t m1, float* acc,
                                                        AttnThreadScratch* scratch) {
  const AttnRows& r = c.rows;
  const int64_t n = r.n, d = r.d, chunks = m1 - m0, width = 32 * chunks;
  const int64_t tiles = (n + kValueTile - 1) / kValueTile;
  Consts consts;
  consts.e4m3 = simd::MakeE4M3PairConsts();
  consts.spreads = simd::MakeRowSpreads();
  // A tile's rows go block by block of kBlockChunks chunks (128 columns): vb BF16
  // [kValueTile/2][block chunks][2][32]: entries 2jp + 1 (low words) and 2jp (high) per
  // column, for the 32 columns of chunk m as unpacklo / unpackhi registers, decoded straight
  // into that order. accp FP32 [heads][chunks][2][16]: the range's columns in that register
  // order.
  std::vector<uint16_t>& vb = scratch->vb;
  std::vector<float>& accp = scratch->accp;
  vb.resize(static_cast<size_t>(kValueTile * 32 * kBlockChunks));
  accp.assign(static_cast<size_t>(heads * width), 0.0f);
  const int64_t blocks = (chunks + kBlockChunks - 1) / kBlockChunks;
  const int64_t head_pairs = (heads + 1) / 2;
  // Only the range's bytes of each entry; the first tile's are requested now, each later
  // tile's over the previous tile's (block, head pair) passes.
  const EntryLines lines = EntryColumns(r, 32 * m0, 32 * m1);
  PrefetchEntries(r.packed, std::min<int64_t>(kValueTile, n), lines);
  for (int64_t tile = 0; tile < tiles; ++tile) {
    const int64_t j0 = tile * kValueTile, count = std::min<int64_t>(kValueTile, n - j0);
    const int64_t used_pairs = (count + 1) / 2;
    PrefetchCursor next(r.packed + j0 + kValueTile,
                        std::min<int64_t>(kValueTile, std::max<int64_t>(n - j0 - kValueTile, 0)),
                        lines, blocks * head_pairs);
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t m_begin = blk * kBlockChunks;
      const int64_t block_chunks = std::min<int64_t>(kBlockChunks, chunks - m_begin);
      DecodeValueBlock(r, r.packed + j0, count, m0 + m_begin, block_chunks, consts, vb.data());
      // Two heads per pass over the interleaved rows (an odd last head pairs with itself).
      for (int64_t h = 0; h < heads; h += 2) {
        next.Next();  // the next tile's entries, over the (block, head pair) passes
        const int64_t h1 = std::min(h + 1, heads - 1);
        const ValuePass pass{vb.data(), block_chunks, used_pairs,
                             w + (h * tiles + tile) * (kValueTile / 2),
                             w + (h1 * tiles + tile) * (kValueTile / 2)};
        float* a0 = accp.data() + h * width + 32 * m_begin;
        float* a1 = accp.data() + h1 * width + 32 * m_begin;
        int64_t reg = 0;  // register index in the block (2 per 32 columns)
        if (block_chunks == 4) {
          ValueRegs<8>(pass, reg, a0, a1);
          continue;
        }
        if (reg + 4 <= 2 * block_chunks) {
          ValueRegs<4>(pass, reg, a0, a1);
          reg += 4;
        }
        if (reg < 2 * block_chunks) ValueRegs<2>(pass, reg, a0, a1);
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
      const __m512 r0 = _mm512_loadu_ps(accp.data() + h * width + (2 * m) * 16);
      const __m512 r1 = _mm512_loadu_ps(accp.data() + h * width + (2 * m + 1) * 16);
      float* dst = acc + h * d + 32 * (m0 + m);
      _mm512_storeu_ps(dst, _mm512_permutex2var_ps(r0, first, r1));
      _mm512_storeu_ps(dst + 16, _mm512_permutex2var_ps(r0, second, r1));
    }
  }
}

}  // namespace dsv4::kernels::internal
