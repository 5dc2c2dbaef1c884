// Internal interface between the attention front end (attention.cpp: threading, softmax,
// ISA dispatch) and its per-ISA passes. Not part of the kernels API.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/bf16.h"
#include "core/kv_entry.h"
#include "kernels/cpu/per_thread.h"
#include "kernels/ref/attention_exp_ref.h"

namespace dsv4::kernels::internal {

// The K=V rows of one attention call: either dense FP32 rows or packed cache entries
// (core/kv_entry.h: [d_nope E4M3][d_nope/64 E8M0][rope_dim BF16][pad]), decoded tile by tile.
struct AttnRows {
  const float* dense = nullptr;            // FP32 [n, d], or
  const uint8_t* const* packed = nullptr;  // [n] entry pointers
  int64_t n = 0;
  int64_t d_nope = 0;  // packed only
  int64_t rope_dim = 0;
  int64_t d = 0;  // row width

  KvEntryLayout entry() const { return {d_nope, rope_dim}; }
};

// One call's operands. q FP32 [heads, d] (the BF16 query, exact).
struct AttnCall {
  const float* q = nullptr;
  AttnRows rows;
  float scale = 1.0f;
};

// What pass 1 learnt about the rows that pass 2 of the same thread may use (BF16 path).
struct AttnPassState {
  bool bf16_rows = false;  // every row value is BF16-exact, normal or zero, finite
  int grain_exp = 0;       // nonzero row values are multiples of 2^grain_exp
  int max_exp = 0;         // |row value| < 2^max_exp
};

// One pool thread's scratch of the attention passes (part of kernels::Workspace).
struct AttnThreadScratch {
  std::vector<float> rows;        // decoded entries of a tile FP32 [tile, d] (scalar: [d])
  std::vector<float> head_pairs;  // AVX-512 scores: q of head pairs FP32 [pairs, d/8, 16]
  std::vector<float> den;         // softmax denominators of the thread's heads
  std::vector<float> exps;        // AVX-512 softmax: e^{s-m} of a block of heads [8, n]
  // VDPBF16PS passes (attention_avx512bf16.cpp).
  std::vector<uint32_t> q_pairs;      // q in pair layout [heads, d/2]
  std::vector<uint16_t> kb;           // a score tile's entries, BF16 words [d, 16]
  std::vector<uint16_t> vb;           // a value tile's entries, BF16 words [32, d]
  std::vector<float> accp;            // the value sums in register order [heads, d]
  std::vector<uint32_t> pp_all;       // a tile's weight pairs [heads, 8]
};

// The attention's part of kernels::Workspace.
struct AttnScratch {
  std::vector<float> q;    // the query FP32 [heads, d]
  std::vector<float> s;    // scores, then softmax weights FP32 [heads, n]
  std::vector<float> acc;  // the weighted value sums FP32 [heads, d]
  PerThread<AttnThreadScratch> threads;
};

// Pass 1, heads [h0, h1): s[(h - h0) * n + j] = Dot8(q_h, row_j) * scale.
// Pass 2, heads [h0, h1): acc[(h - h0) * d + k] = Σ_j (ascending) p[(h - h0) * n + j] * row_j[k]
// (acc starts at 0; products rounded, then added, as the scalar loop does).
// The SIMD passes need d % 16 == 0 (and d_nope % 64 == 0 when packed); the BF16 ones packed
// rows with rope_dim % 32 == 0.
void AttnScoresScalar(const AttnCall& c, int64_t h0, int64_t h1, float* s, AttnPassState* st,
                      AttnThreadScratch* scratch);
void AttnValuesScalar(const AttnCall& c, int64_t h0, int64_t h1, const float* p, float* acc,
                      const AttnPassState& st, AttnThreadScratch* scratch);
void AttnScoresAvx2(const AttnCall& c, int64_t h0, int64_t h1, float* s, AttnPassState* st,
                    AttnThreadScratch* scratch);
void AttnValuesAvx2(const AttnCall& c, int64_t h0, int64_t h1, const float* p, float* acc,
                    const AttnPassState& st, AttnThreadScratch* scratch);
void AttnScoresAvx512(const AttnCall& c, int64_t h0, int64_t h1, float* s, AttnPassState* st,
                      AttnThreadScratch* scratch);
void AttnValuesAvx512(const AttnCall& c, int64_t h0, int64_t h1, const float* p, float* acc,
                      const AttnPassState& st, AttnThreadScratch* scratch);
// Pass 1 over rows [j0, j1) only (writing s[(h - h0) * n + j]).
void AttnScoresRangeAvx512(const AttnCall& c, int64_t h0, int64_t h1, int64_t j0, int64_t j1,
                           float* s, AttnThreadScratch* scratch);
// VDPBF16PS passes: tiles (pass 1) or calls (pass 2) whose products and sums could leave the
// FP32 normal range take the AVX-512 FP32 loops instead.
void AttnScoresAvx512Bf16(const AttnCall& c, int64_t h0, int64_t h1, float* s, AttnPassState* st,
                          AttnThreadScratch* scratch);
void AttnValuesAvx512Bf16(const AttnCall& c, int64_t h0, int64_t h1, const float* p, float* acc,
                          const AttnPassState& st, AttnThreadScratch* scratch);

// The softmax of `heads` heads in place (scalar order of kernels/ref/attention_ref.cpp):
// s [heads, n] becomes p = bf16(e^{s-m}) with m the head's max score and e = ExpF
// (kernels/ref/attention_exp_ref.h); den[h] = Σ_j e_j (ascending j, from +0) + ExpF(sink[h] - m).
void AttnSoftmaxScalar(const float* sink, int64_t heads, int64_t n, float* s, float* den,
                       AttnThreadScratch* scratch);
// The scalar loop compiled with FMA (std::fma inline instead of a libm call).
void AttnSoftmaxAvx2(const float* sink, int64_t heads, int64_t n, float* s, float* den,
                     AttnThreadScratch* scratch);
void AttnSoftmaxAvx512(const float* sink, int64_t heads, int64_t n, float* s, float* den,
                       AttnThreadScratch* scratch);
// out[h * d + k] = bf16(acc[h * d + k] / den[h]) for heads [0, heads) (IEEE division, round
// to nearest even; NaN stays a quiet NaN, as F32ToBf16).
void AttnNormalizeScalar(const float* acc, const float* den, int64_t heads, int64_t d, BF16* out);
void AttnNormalizeAvx512(const float* acc, const float* den, int64_t heads, int64_t d, BF16* out);
// out[i] = ExpF(x[i]), 16 lanes at a time (AVX-512; exposed for the tests).
void ExpFAvx512(const float* x, int64_t n, float* out);

// The body of AttnSoftmaxScalar / AttnSoftmaxAvx2 (inlined into each, with its target).
inline void AttnSoftmaxRows(const float* sink, int64_t heads, int64_t n, float* s, float* den) {
  for (int64_t h = 0; h < heads; ++h) {
    float* sh = s + h * n;  // becomes p = bf16(e^{s-m}) in place
    float mx = -INFINITY;
    for (int64_t j = 0; j < n; ++j) mx = std::max(mx, sh[j]);
    float sum = 0.0f;
    for (int64_t j = 0; j < n; ++j) {
      const float e = ExpF(sh[j] - mx);
      sum += e;
      sh[j] = RoundBf16(e);
    }
    den[h] = sum + ExpF(sink[h] - mx);
  }
}

// Row j of the call as FP32 [d]: a pointer into the dense rows, or `buffer` after decoding
// the packed entry into it (DecodeKvEntry).
const float* AttnRowScalar(const AttnRows& r, int64_t j, float* buffer);

}  // namespace dsv4::kernels::internal
