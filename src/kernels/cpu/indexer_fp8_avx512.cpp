// AVX-512 FP8 indexer scores: 16 keys per tile, decoded once into registers' layout (register
// p holds keys p and p + 8 as its two 8-lane halves, so each key keeps the canonical lane
// order of kernels::Dot8) and scored against two query heads at a time; the ReLU-weighted
// head sum runs on the 16 keys' dots as one vector, heads in ascending order. E4M3 x E4M3
// products are exact, so FMA (FP32 path) and VDPBF16PS (BF16 path, see
// indexer_fp8_internal.h) round exactly as the canonical multiply-then-add.
#include <algorithm>
#include <vector>

#include "kernels/cpu/indexer_fp8_internal.h"
#include "kernels/cpu/simd.h"  // its pragmas cover every SIMD function defined below

namespace dsv4::kernels::internal {
namespace {

constexpr int kKeys = 16;
constexpr int kPairs = kKeys / 2;

// The tile's key rows (a partial tile repeats its last key) and their scales.
struct Tile {
  const uint8_t* rows[kKeys];
  float scales[kKeys];
  int64_t count = 0;
};

DSV4_TARGET_AVX512 void LoadTile(const PagedRows& keys, int64_t dim, int64_t t0, int64_t end,
                                 Tile* t) {
  t->count = std::min<int64_t>(kKeys, end - t0);
  for (int i = 0; i < kKeys; ++i) {
    t->rows[i] = keys.Row(t0 + std::min<int64_t>(i, t->count - 1));
    t->scales[i] = IndexerKeyFp8Scale(t->rows[i], dim);
  }
}

// Adds head h's term max(d_h, 0) · w_h of the 16 keys to total; dot: the head's 16 dots d_h.
DSV4_TARGET_AVX512 inline __m512 AddHead(__m512 total, __m512 dot, float w) {
  return _mm512_add_ps(total, _mm512_mul_ps(simd::Relu16(dot), _mm512_set1_ps(w)));
}

// The 16 dots of a head from its accumulators of 2^-8-scaled key values (exact rescale).
DSV4_TARGET_AVX512 inline __m512 UnscaledDots(const __m512* acc) {
  return _mm512_mul_ps(simd::ReduceLanes16(acc), _mm512_set1_ps(simd::kE4M3Fp16Unscale));
}

// kb FP32 [dim/8][kPairs][16]: step s of keys p (low half) and p + 8 (high half), 2^-8 times
// the code values.
DSV4_TARGET_AVX512 void DecodeTile(const Tile& t, int64_t dim, float* kb) {
  for (int p = 0; p < kPairs; ++p) {
    for (int64_t s = 0; s < dim / 8; ++s) {
      _mm512_storeu_ps(kb + (s * kPairs + p) * 16,
                       simd::E4M3x8x2(t.rows[p] + 8 * s, t.rows[p + 8] + 8 * s));
    }
  }
}

// The 16 keys' scores before the key scales: Σ_h max(d_h, 0) · w_h.
DSV4_TARGET_AVX512 __m512 ScoreTile(const IndexerFp8Prepared& q, const float* kb) {
  const int64_t dim = q.dim;
  __m512 total = _mm512_setzero_ps();
  int64_t h = 0;
  for (; h + 2 <= q.heads; h += 2) {
    __m512 a0[kPairs], a1[kPairs];
    for (int p = 0; p < kPairs; ++p) a0[p] = a1[p] = _mm512_setzero_ps();
    const float* q0 = q.q + h * dim;
    const float* q1 = q0 + dim;
    for (int64_t s = 0; s < dim / 8; ++s) {
      const __m512 qa = _mm512_broadcast_f32x8(_mm256_loadu_ps(q0 + 8 * s));
      const __m512 qb = _mm512_broadcast_f32x8(_mm256_loadu_ps(q1 + 8 * s));
      const float* k = kb + s * kPairs * 16;
      for (int p = 0; p < kPairs; ++p) {
        __m512 kv = _mm512_loadu_ps(k + 16 * p);
        // One load for both heads: GCC would fold the load into each FMA (two 64-B loads per
        // pair of FMAs, a third slower on Zen 4, where loads bound this loop).
        asm("" : "+v"(kv));
        a0[p] = _mm512_fmadd_ps(qa, kv, a0[p]);
        a1[p] = _mm512_fmadd_ps(qb, kv, a1[p]);
      }
    }
    total = AddHead(total, UnscaledDots(a0), q.w[h]);
    total = AddHead(total, UnscaledDots(a1), q.w[h + 1]);
  }
  for (; h < q.heads; ++h) {
    __m512 a0[kPairs];
    for (int p = 0; p < kPairs; ++p) a0[p] = _mm512_setzero_ps();
    const float* q0 = q.q + h * dim;
    for (int64_t s = 0; s < dim / 8; ++s) {
      const __m512 qa = _mm512_broadcast_f32x8(_mm256_loadu_ps(q0 + 8 * s));
      for (int p = 0; p < kPairs; ++p) {
        a0[p] = _mm512_fmadd_ps(qa, _mm512_loadu_ps(kb + (s * kPairs + p) * 16), a0[p]);
      }
    }
    total = AddHead(total, UnscaledDots(a0), q.w[h]);
  }
  return total;
}

// kb BF16 words [dim/16][kPairs][32]: group g of keys p (dword lanes 0-7) and p + 8 (lanes
// 8-15) in pair layout, the exact code values.
DSV4_TARGET_AVX512BF16 void DecodeTileBf16(const Tile& t, int64_t dim,
                                           const simd::E4M3PairConsts& c, uint16_t* kb) {
  for (int p = 0; p < kPairs; ++p) {
    for (int64_t g = 0; g < dim / 16; ++g) {
      _mm512_storeu_si512(kb + (g * kPairs + p) * 32,
                          simd::E4M3PairsBf16(t.rows[p] + 16 * g, t.rows[p + 8] + 16 * g, c));
    }
  }
}

DSV4_TARGET_AVX512BF16 __m512 ScoreTileBf16(const IndexerFp8Prepared& q, const uint16_t* kb) {
  const int64_t groups = q.dim / 16;
  __m512 total = _mm512_setzero_ps();
  auto q_group = [&](int64_t h, int64_t g) {
    return _mm512_broadcast_i64x4(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q.q_pairs + (h * groups + g) * 8)));
  };
  int64_t h = 0;
  for (; h + 2 <= q.heads; h += 2) {
    __m512 a0[kPairs], a1[kPairs];
#pragma GCC unroll 8
    for (int p = 0; p < kPairs; ++p) a0[p] = a1[p] = _mm512_setzero_ps();
    for (int64_t g = 0; g < groups; ++g) {
      const __m512i qa = q_group(h, g), qb = q_group(h + 1, g);
      const uint16_t* k = kb + g * kPairs * 32;
#pragma GCC unroll 8
      for (int p = 0; p < kPairs; ++p) {
        const __m512i kv = _mm512_loadu_si512(k + 32 * p);
        a0[p] = simd::DotBf16(a0[p], qa, kv);
        a1[p] = simd::DotBf16(a1[p], qb, kv);
      }
    }
    total = AddHead(total, simd::ReduceLanes16(a0), q.w[h]);
    total = AddHead(total, simd::ReduceLanes16(a1), q.w[h + 1]);
  }
  for (; h < q.heads; ++h) {
    __m512 a0[kPairs];
#pragma GCC unroll 8
    for (int p = 0; p < kPairs; ++p) a0[p] = _mm512_setzero_ps();
    for (int64_t g = 0; g < groups; ++g) {
      const __m512i qa = q_group(h, g);
#pragma GCC unroll 8
      for (int p = 0; p < kPairs; ++p) {
        a0[p] = simd::DotBf16(a0[p], qa, _mm512_loadu_si512(kb + (g * kPairs + p) * 32));
      }
    }
    total = AddHead(total, simd::ReduceLanes16(a0), q.w[h]);
  }
  return total;
}

}  // namespace

DSV4_TARGET_AVX512 void IndexerFp8ScoresAvx512(const IndexerFp8Prepared& q, const PagedRows& keys,
                                               int64_t begin, int64_t end, float* scores) {
  thread_local std::vector<float> kb;
  kb.resize(static_cast<size_t>(q.dim * kKeys));
  Tile t;
  for (int64_t t0 = begin; t0 < end; t0 += kKeys) {
    LoadTile(keys, q.dim, t0, end, &t);
    DecodeTile(t, q.dim, kb.data());
    float out[kKeys];
    _mm512_storeu_ps(out, _mm512_mul_ps(ScoreTile(q, kb.data()), _mm512_loadu_ps(t.scales)));
    std::copy_n(out, t.count, scores + (t0 - begin));
  }
}

DSV4_TARGET_AVX512BF16 void IndexerFp8ScoresAvx512Bf16(const IndexerFp8Prepared& q,
                                                       const PagedRows& keys, int64_t begin,
                                                       int64_t end, float* scores) {
  thread_local std::vector<uint16_t> kb;
  kb.resize(static_cast<size_t>(q.dim * kKeys));
  const simd::E4M3PairConsts consts = simd::MakeE4M3PairConsts();
  Tile t;
  for (int64_t t0 = begin; t0 < end; t0 += kKeys) {
    LoadTile(keys, q.dim, t0, end, &t);
    DecodeTileBf16(t, q.dim, consts, kb.data());
    float out[kKeys];
    _mm512_storeu_ps(out, _mm512_mul_ps(ScoreTileBf16(q, kb.data()), _mm512_loadu_ps(t.scales)));
    std::copy_n(out, t.count, scores + (t0 - begin));
  }
}

}  // namespace dsv4::kernels::internal
