// The attention softmax's exponential, defined here so that every path computes the same
// bits without depending on the C library: e^x in FP32 by the algorithm of glibc's expf
// (ARM optimized-routines, glibc >= 2.27), with its FMA build's fused operations written out:
// x·32/ln2 = k + r (k an integer, |r| <= 1/2, in double), e^x = 2^{k/32}·2^{r/32} with 2^{k/32}
// from a 32-entry table and 2^{r/32} a cubic in r, rounded once to FP32. glibc 2.36's
// __expf_fma gives the same bits for every one of the 2^32 inputs (checked on the machine of
// README "Benchmarks"), so std::exp and ExpF agree there; elsewhere ExpF is the definition.
// kernels/cpu/attention_softmax_avx512.cpp computes it 16 lanes at a time.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

namespace dsv4::kernels {

namespace exp_constants {
// 2^{i/32} with i << 47 subtracted from the bit pattern (added back from k's low bits).
inline constexpr uint64_t kTable[32] = {
    0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51,
    0x3fef72b83c7d517b, 0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1,
    0x3fef06fe0a31b715, 0x3feef1a7373aa9cb, 0x3feedea64c123422, 0x3feece086061892d,
    0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429, 0x3feea47eb03a5585,
    0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13,
    0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d,
    0x3feee89f995ad3ad, 0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069,
    0x3fef5818dcfba487, 0x3fef7c97337b9b5f, 0x3fefa4afa2a490da, 0x3fefd0765b6e4540};
inline constexpr uint64_t kInvLn2N = 0x40471547652b82fe;  // 32 / ln 2
inline constexpr uint64_t kShift = 0x4338000000000000;    // 1.5 · 2^52: rounds to an integer
inline constexpr uint64_t kC0 = 0x3ebc6af84b912394;       // r^3
inline constexpr uint64_t kC1 = 0x3f2ebfce50fac4f3;       // r^2
inline constexpr uint64_t kC2 = 0x3f962e42ff0c52d6;       // r
inline constexpr uint32_t kOverflow = 0x42b17217;         // x above: +inf
inline constexpr uint32_t kUnderflow = 0xc2cff1b4;        // x below: 0
inline constexpr uint32_t kMayUnderflow = 0xc2ce8ecf;     // x below (and not above): 2^-149
// Inputs whose bits (>> 20, sign dropped) reach this (|x| >= 88, inf, NaN) take the checks.
inline constexpr uint32_t kSpecialTop = 0x42a;
}  // namespace exp_constants

// e^x for the inputs ExpF leaves the main path (|x| >= 88, ±inf, NaN), as glibc orders its
// checks; x inside the range goes to the main path of ExpF.
inline float ExpFSpecial(float x, bool* main_path) {
  using namespace exp_constants;
  const uint32_t u = std::bit_cast<uint32_t>(x);
  *main_path = false;
  if (u == 0xff800000u) return 0.0f;
  if (((u >> 20) & 0x7ff) > 0x7f7) return x + x;  // +inf, NaN
  if (x > std::bit_cast<float>(kOverflow)) return INFINITY;
  if (x < std::bit_cast<float>(kUnderflow)) return 0.0f;
  if (x < std::bit_cast<float>(kMayUnderflow)) return std::bit_cast<float>(uint32_t{1});
  *main_path = true;
  return 0.0f;
}

inline float ExpF(float x) {
  using namespace exp_constants;
  if (((std::bit_cast<uint32_t>(x) >> 20) & 0x7ff) >= kSpecialTop) {
    bool main_path;
    const float special = ExpFSpecial(x, &main_path);
    if (!main_path) return special;
  }
  const double xd = x;
  const double inv_ln2n = std::bit_cast<double>(kInvLn2N);
  const double shift = std::bit_cast<double>(kShift);
  const double z = std::fma(inv_ln2n, xd, shift);
  const uint64_t ki = std::bit_cast<uint64_t>(z);
  const double kd = z - shift;
  const double r = std::fma(inv_ln2n, xd, -kd);
  const double s = std::bit_cast<double>(kTable[ki & 31] + (ki << 47));
  const double p = std::fma(r, std::bit_cast<double>(kC0), std::bit_cast<double>(kC1));
  const double r2 = r * r;
  double y = std::fma(r, std::bit_cast<double>(kC2), 1.0);
  y = std::fma(p, r2, y);
  return static_cast<float>(y * s);
}

}  // namespace dsv4::kernels
