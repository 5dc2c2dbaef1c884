// AVX-512 indexer scores: 16 keys per tile, decoded once into registers' layout (register p
// holds keys p and p + 8 as its two 8-lane halves, so each key keeps the canonical lane order
// of kernels::Dot8) and scored against two query heads at a time; the ReLU-weighted head sum
// runs on the 16 keys' dots as one vector, heads in ascending order.
#include <algorithm>
#include <vector>

#include "kernels/cpu/indexer_internal.h"
#include "kernels/cpu/linear_internal.h"
#include "kernels/cpu/simd.h"  // its pragmas cover every SIMD function defined below

namespace dsv4::kernels::internal {
namespace {

constexpr int kKeys = 16;
constexpr int kPairs = kKeys / 2;

// kb FP32 [dim/8][kPairs][16]: step s of keys p (low half) and p + 8 (high half), decoded
// exactly (E2M1 value times the block's E8M0 scale). rows: the tile's 16 key rows.
DSV4_TARGET_AVX512 void DecodeTile(const uint8_t* const* rows, int64_t dim, float* kb) {
  const float* e8m0 = E8M0Table();
  for (int p = 0; p < kPairs; ++p) {
    const uint8_t* a = rows[p];
    const uint8_t* b = rows[p + 8];
    for (int64_t c = 0; c < dim / 32; ++c) {
      __m512 v[4];
      simd::E2M1x32x2(a + 16 * c, b + 16 * c, v);
      const __m512 scale = _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(e8m0[a[dim / 2 + c]]),
                                                _mm512_set1_ps(e8m0[b[dim / 2 + c]]));
      for (int j = 0; j < 4; ++j) {
        _mm512_storeu_ps(kb + ((4 * c + j) * kPairs + p) * 16, _mm512_mul_ps(v[j], scale));
      }
    }
  }
}

// Adds head h's term bf16(w_h * relu(bf16(dot))) of the 16 keys to total.
DSV4_TARGET_AVX512 inline __m512 AddHead(__m512 total, const __m512* acc, float w) {
  const __m512 dot = simd::RoundBf16x16(simd::ReduceLanes16(acc));
  return _mm512_add_ps(total,
                       simd::RoundBf16x16(_mm512_mul_ps(_mm512_set1_ps(w), simd::Relu16(dot))));
}

// The 16 scores of a decoded tile.
DSV4_TARGET_AVX512 __m512 ScoreTile(const IndexerPrepared& q, const float* kb) {
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
        const __m512 kv = _mm512_loadu_ps(k + 16 * p);
        a0[p] = _mm512_add_ps(a0[p], _mm512_mul_ps(qa, kv));
        a1[p] = _mm512_add_ps(a1[p], _mm512_mul_ps(qb, kv));
      }
    }
    total = AddHead(total, a0, q.w[h]);
    total = AddHead(total, a1, q.w[h + 1]);
  }
  for (; h < q.heads; ++h) {
    __m512 a0[kPairs];
    for (int p = 0; p < kPairs; ++p) a0[p] = _mm512_setzero_ps();
    const float* q0 = q.q + h * dim;
    for (int64_t s = 0; s < dim / 8; ++s) {
      const __m512 qa = _mm512_broadcast_f32x8(_mm256_loadu_ps(q0 + 8 * s));
      for (int p = 0; p < kPairs; ++p) {
        a0[p] =
            _mm512_add_ps(a0[p], _mm512_mul_ps(qa, _mm512_loadu_ps(kb + (s * kPairs + p) * 16)));
      }
    }
    total = AddHead(total, a0, q.w[h]);
  }
  return simd::RoundBf16x16(total);
}

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

// kb BF16 words [dim/16][kPairs][32]: group g of keys p (lanes 0-7) and p + 8 (lanes 8-15)
// in pair layout.
DSV4_TARGET_AVX512BF16 void DecodeTileBf16(const uint8_t* const* rows, int64_t dim,
                                           const simd::E2M1PairConsts& c, uint16_t* kb) {
  const __m512i magnitude = _mm512_set1_epi16(0x7FFF);
  for (int p = 0; p < kPairs; ++p) {
    const uint8_t* a = rows[p];
    const uint8_t* b = rows[p + 8];
    for (int64_t g = 0; g < dim / 16; ++g) {
      __m512i v = simd::E2M1PairsBf16(a + 8 * g, b + 8 * g, c);
      // Scale 2^(s-127): add s - 127 to the exponent field of the nonzero words.
      const int16_t da = static_cast<int16_t>((a[dim / 2 + g / 2] - 127) * 128);
      const int16_t db = static_cast<int16_t>((b[dim / 2 + g / 2] - 127) * 128);
      const __m512i shift =
          _mm512_mask_blend_epi16(0xFFFF0000u, _mm512_set1_epi16(da), _mm512_set1_epi16(db));
      v = _mm512_mask_add_epi16(v, _mm512_test_epi16_mask(v, magnitude), v, shift);
      _mm512_storeu_si512(kb + (g * kPairs + p) * 32, v);
    }
  }
}

DSV4_TARGET_AVX512BF16 __m512 ScoreTileBf16(const IndexerPrepared& q, const uint16_t* kb) {
  const int64_t groups = q.dim / 16;
  __m512 total = _mm512_setzero_ps();
  auto q_group = [&](int64_t h, int64_t g) { return q.q_pairs + (h * groups + g) * 8; };
  int64_t h = 0;
  for (; h + 2 <= q.heads; h += 2) {
    __m512 a0[kPairs], a1[kPairs];
#pragma GCC unroll 8
    for (int p = 0; p < kPairs; ++p) a0[p] = a1[p] = _mm512_setzero_ps();
    for (int64_t g = 0; g < groups; ++g) {
      const __m512i qa = _mm512_broadcast_i64x4(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q_group(h, g))));
      const __m512i qb = _mm512_broadcast_i64x4(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q_group(h + 1, g))));
      const uint16_t* k = kb + g * kPairs * 32;
#pragma GCC unroll 8
      for (int p = 0; p < kPairs; ++p) {
        const __m512i kv = _mm512_loadu_si512(k + 32 * p);
        a0[p] = simd::DotBf16(a0[p], qa, kv);
        a1[p] = simd::DotBf16(a1[p], qb, kv);
      }
    }
    total = AddHead(total, a0, q.w[h]);
    total = AddHead(total, a1, q.w[h + 1]);
  }
  for (; h < q.heads; ++h) {
    __m512 a0[kPairs];
#pragma GCC unroll 8
    for (int p = 0; p < kPairs; ++p) a0[p] = _mm512_setzero_ps();
    for (int64_t g = 0; g < groups; ++g) {
      const __m512i qa = _mm512_broadcast_i64x4(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q_group(h, g))));
#pragma GCC unroll 8
      for (int p = 0; p < kPairs; ++p) {
        a0[p] = simd::DotBf16(a0[p], qa, _mm512_loadu_si512(kb + (g * kPairs + p) * 32));
      }
    }
    total = AddHead(total, a0, q.w[h]);
  }
  return simd::RoundBf16x16(total);
}

}  // namespace

DSV4_TARGET_AVX512BF16 void IndexerScoresAvx512Bf16(const IndexerPrepared& q, const PagedRows& keys,
                                                    int64_t begin, int64_t end, float* scores) {
  thread_local std::vector<float> kb;
  thread_local std::vector<uint16_t> kb16;
  kb.resize(static_cast<size_t>(q.dim * kKeys));
  kb16.resize(static_cast<size_t>(q.dim * kKeys));
  const simd::E2M1PairConsts consts = simd::MakeE2M1PairConsts();
  const int64_t blocks = q.dim / 32;
  for (int64_t t0 = begin; t0 < end; t0 += kKeys) {
    const int64_t count = std::min<int64_t>(kKeys, end - t0);
    const uint8_t* rows[kKeys];  // a partial tile repeats its last key
    int e_min = 1000, e_max = -1000;
    for (int i = 0; i < kKeys; ++i) {
      rows[i] = keys.Row(t0 + std::min<int64_t>(i, count - 1));
      for (int64_t b = 0; b < blocks; ++b) {
        const int e = rows[i][q.dim / 2 + b] - 127;
        e_min = std::min(e_min, e);
        e_max = std::max(e_max, e);
      }
    }
    float out[kKeys];
    if (TileIsSafe(q, e_min, e_max)) {
      DecodeTileBf16(rows, q.dim, consts, kb16.data());
      _mm512_storeu_ps(out, ScoreTileBf16(q, kb16.data()));
    } else {
      DecodeTile(rows, q.dim, kb.data());
      _mm512_storeu_ps(out, ScoreTile(q, kb.data()));
    }
    std::copy_n(out, count, scores + (t0 - begin));
  }
}

DSV4_TARGET_AVX512 void IndexerScoresAvx512(const IndexerPrepared& q, const PagedRows& keys,
                                            int64_t begin, int64_t end, float* scores) {
  thread_local std::vector<float> kb;
  kb.resize(static_cast<size_t>(q.dim * kKeys));
  for (int64_t t0 = begin; t0 < end; t0 += kKeys) {
    const int64_t count = std::min<int64_t>(kKeys, end - t0);
    const uint8_t* rows[kKeys];  // a partial tile repeats its last key
    for (int i = 0; i < kKeys; ++i) rows[i] = keys.Row(t0 + std::min<int64_t>(i, count - 1));
    DecodeTile(rows, q.dim, kb.data());
    float out[kKeys];
    _mm512_storeu_ps(out, ScoreTile(q, kb.data()));
    std::copy_n(out, count, scores + (t0 - begin));
  }
}

}  // namespace dsv4::kernels::internal
