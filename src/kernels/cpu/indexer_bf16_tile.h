// The VDPBF16PS tile of both indexer scans (V4 FP4 keys: indexer_avx512.cpp; V3.2 FP8 keys:
// indexer_fp8_avx512.cpp): 16 keys, each key's 8 canonical accumulators (kernels/cpu/simd.h:
// element k of a dot goes to accumulator k mod 8) spread so that the canonical combine
// ((a0+a1)+(a2+a3))+((a4+a5)+(a6+a7)) costs 7 adds and 6 shuffles per head instead of 15
// shuffles, while each query register still serves 4 key registers.
//
// Layout. A 128-bit chunk holds one key's pairs l = s, s + 2, s + 4, s + 6 of a value group
// (slot s = 0: even l, s = 1: odd l; pair l of group g = [value 16g + l (high word) | value
// 16g + 8 + l (low word)], simd.h's pair layout, so every lane computes exactly what the pair
// layout's lane l does). Register (g, s, m) holds keys m, m + 4, m + 8, m + 12 in its four
// chunks; the query register of (head, g, s) is that head's 4 pairs broadcast to every chunk
// (the prepared query's pairs are stored in slot order, indexer_internal.h PairSlot). A head's
// accumulators are the 8 registers (s, m): acc(0, m) + acc(1, m) adds canonical accumulators
// l and l + 1 lane by lane, and two levels of in-chunk pair sums over the 4 registers m finish
// the tree, leaving key 4j + m in lane 4j + m: the 16 dots in key order. Included only by the
// *_avx512.cpp indexer files.
#pragma once

#include <cstdint>

#include "kernels/cpu/simd.h"

namespace dsv4::kernels::internal::bf16_tile {

constexpr int kKeys = 16;  // keys of a tile
constexpr int kHeads = 3;  // query heads per pass over the tile: 24 accumulators, 3 queries, 1 key
constexpr int64_t kGroupDwords = 8 * kKeys;  // one value group of a tile: registers (s, m)

// Stores one value group of a tile at kb (registers (s, m) at kb + (4s + m) * 16 dwords) from
// its pair-layout registers v[p] = [key p's pairs 0-7 | key p + 8's pairs 0-7], p = 0..7 (the
// V3.2 decoder; the V4 decoder, indexer_avx512.cpp, builds each register (s, m) directly).
DSV4_TARGET_AVX512BF16 inline void StoreGroup(const __m512i* v, uint32_t* kb) {
  // Register (s, m) from a = v[m] (keys m, m + 8) and b = v[m + 4] (keys m + 4, m + 12):
  // chunks [a's key m, b's key m + 4, a's key m + 8, b's key m + 12], pairs s, s+2, s+4, s+6.
  const __m512i even =
      _mm512_setr_epi32(0, 2, 4, 6, 16, 18, 20, 22, 8, 10, 12, 14, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  for (int m = 0; m < 4; ++m) {
    _mm512_storeu_si512(kb + m * kKeys, _mm512_permutex2var_epi32(v[m], even, v[m + 4]));
    _mm512_storeu_si512(kb + (4 + m) * kKeys, _mm512_permutex2var_epi32(v[m], odd, v[m + 4]));
  }
}

// Pair sums within each 128-bit chunk, as _mm256_hadd_ps does.
DSV4_TARGET_AVX512BF16 inline __m512 PairSums(__m512 a, __m512 b) {
  return _mm512_add_ps(_mm512_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
}

// total + Σ term(total, h, dot_h) for heads h .. h + kPass - 1 in order; dot_h: the canonical
// FP32 dots of head h with the tile's keys (lane i: key i). q_pairs [heads, groups, 8] in
// slot order.
template <int kPass, class Term>
DSV4_TARGET_AVX512BF16 inline __m512 HeadsPass(const uint32_t* q_pairs, int64_t h, int64_t groups,
                                               const uint32_t* kb, Term& term,
                                               __m512 total) {
  __m512 acc[kPass][2][4];
  for (int i = 0; i < kPass; ++i) {
    for (int s = 0; s < 2; ++s) {
      for (int m = 0; m < 4; ++m) acc[i][s][m] = _mm512_setzero_ps();
    }
  }
  const uint32_t* q = q_pairs + h * groups * 8;
  for (int64_t g = 0; g < groups; ++g) {
    const uint32_t* k = kb + g * kGroupDwords;
    for (int s = 0; s < 2; ++s) {
      __m512i qv[kPass];
      for (int i = 0; i < kPass; ++i) {
        qv[i] = _mm512_broadcast_i32x4(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + (i * groups + g) * 8 + 4 * s)));
      }
      for (int m = 0; m < 4; ++m) {
        __m512i kv = _mm512_loadu_si512(k + (4 * s + m) * kKeys);
        if constexpr (kPass > 1) asm("" : "+v"(kv));  // one load for every head, not one each
        for (int i = 0; i < kPass; ++i) acc[i][s][m] = simd::DotBf16(acc[i][s][m], qv[i], kv);
      }
    }
  }
  for (int i = 0; i < kPass; ++i) {
    __m512 c[4];  // lane 4j + t of c[m]: canonical (a_2t + a_2t+1) of key 4j + m
    for (int m = 0; m < 4; ++m) c[m] = _mm512_add_ps(acc[i][0][m], acc[i][1][m]);
    // Chunk j: [((a0+a1)+(a2+a3)), ((a4+a5)+(a6+a7))] of keys 4j, 4j+1 (then 4j+2, 4j+3),
    // then their sums.
    total = term(total, h + i, PairSums(PairSums(c[0], c[1]), PairSums(c[2], c[3])));
  }
  return total;
}

// Σ_h term(total, h, dot_h) over all heads in ascending order: 3 per pass over the tile, the
// last 4 or 2 two at a time (a pass of one reloads the tile for each head).
// Term: a functor whose operator() carries DSV4_TARGET_AVX512BF16; it may keep state from
// head to head (called in ascending head order).
template <class Term>
DSV4_TARGET_AVX512BF16 inline __m512 SumHeads(const uint32_t* q_pairs, int64_t heads, int64_t dim,
                                              const uint32_t* kb, Term&& term) {
  static_assert(kHeads == 3);
  const int64_t groups = dim / 16;
  __m512 total = _mm512_setzero_ps();
  int64_t h = 0;
  for (; heads - h >= 3 && heads - h != 4; h += 3) {
    total = HeadsPass<3>(q_pairs, h, groups, kb, term, total);
  }
  for (; h + 2 <= heads; h += 2) total = HeadsPass<2>(q_pairs, h, groups, kb, term, total);
  if (h < heads) total = HeadsPass<1>(q_pairs, h, groups, kb, term, total);
  return total;
}

}  // namespace dsv4::kernels::internal::bf16_tile
