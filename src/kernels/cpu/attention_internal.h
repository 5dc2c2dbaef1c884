// Internal interface between the attention front end (attention.cpp: threading, softmax,
// ISA dispatch) and its per-ISA passes. Not part of the kernels API.
#pragma once

#include <cstdint>

namespace dsv4::kernels::internal {

// The K=V rows of one attention call: either dense FP32 rows or packed cache entries
// (kv/entry_codec.h: [d_nope E4M3][d_nope/64 E8M0][rope_dim BF16][pad]), decoded tile by tile.
struct AttnRows {
  const float* dense = nullptr;            // FP32 [n, d], or
  const uint8_t* const* packed = nullptr;  // [n] entry pointers
  int64_t n = 0;
  int64_t d_nope = 0;  // packed only
  int64_t rope_dim = 0;
  int64_t d = 0;  // row width
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

// Pass 1, heads [h0, h1): s[(h - h0) * n + j] = Dot8(q_h, row_j) * scale.
// Pass 2, heads [h0, h1): acc[(h - h0) * d + k] = Σ_j (ascending) p[(h - h0) * n + j] * row_j[k]
// (acc starts at 0; products rounded, then added, as the scalar loop does).
// The SIMD passes need d % 16 == 0 (and d_nope % 64 == 0 when packed); the BF16 ones packed
// rows with rope_dim % 32 == 0.
void AttnScoresScalar(const AttnCall& c, int64_t h0, int64_t h1, float* s, AttnPassState* st);
void AttnValuesScalar(const AttnCall& c, int64_t h0, int64_t h1, const float* p, float* acc,
                      const AttnPassState& st);
void AttnScoresAvx2(const AttnCall& c, int64_t h0, int64_t h1, float* s, AttnPassState* st);
void AttnValuesAvx2(const AttnCall& c, int64_t h0, int64_t h1, const float* p, float* acc,
                    const AttnPassState& st);
void AttnScoresAvx512(const AttnCall& c, int64_t h0, int64_t h1, float* s, AttnPassState* st);
void AttnValuesAvx512(const AttnCall& c, int64_t h0, int64_t h1, const float* p, float* acc,
                      const AttnPassState& st);
// Pass 1 over rows [j0, j1) only (writing s[(h - h0) * n + j]).
void AttnScoresRangeAvx512(const AttnCall& c, int64_t h0, int64_t h1, int64_t j0, int64_t j1,
                           float* s);
// VDPBF16PS passes: tiles (pass 1) or calls (pass 2) whose products and sums could leave the
// FP32 normal range take the AVX-512 FP32 loops instead.
void AttnScoresAvx512Bf16(const AttnCall& c, int64_t h0, int64_t h1, float* s, AttnPassState* st);
void AttnValuesAvx512Bf16(const AttnCall& c, int64_t h0, int64_t h1, const float* p, float* acc,
                          const AttnPassState& st);

// Row j of the call as FP32 [d]: a pointer into the dense rows, or `buffer` after decoding
// the packed entry into it exactly (what kv::DecodeKvEntry gives).
const float* AttnRowScalar(const AttnRows& r, int64_t j, float* buffer);

}  // namespace dsv4::kernels::internal
