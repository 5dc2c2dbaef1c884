// BF16 (bfloat16): 1 sign, 8 exponent, 7 mantissa bits; the upper half of an FP32.
// Spec §0/§3: "bf16(x)" is round-to-nearest-even, the default tensor dtype of the reference.
// Header-only: these conversions sit inside every kernel's inner loop.
#pragma once

#include <bit>
#include <cstdint>
#include <type_traits>

namespace dsv4 {

// A BF16 value as its raw bits. Plain data so that spans of it alias checkpoint bytes.
struct BF16 {
  uint16_t bits = 0;
};
static_assert(sizeof(BF16) == 2);
static_assert(std::is_trivially_copyable_v<BF16>);

// Exact: every BF16 value (incl. subnormals, ±inf, NaN payloads) is an FP32 value.
inline float Bf16ToF32(BF16 x) { return std::bit_cast<float>(static_cast<uint32_t>(x.bits) << 16); }

// Round-to-nearest-even, as PyTorch's c10::BFloat16 does for finite values and infinities:
// finite values past the largest BF16 (0x7F7F, ≈3.39e38) round to ±inf. NaN stays a quiet NaN
// that keeps its sign and top payload bits (PyTorch returns +0x7FC0 for every NaN; keeping
// the sign costs nothing and helps debugging).
inline BF16 F32ToBf16(float x) {
  const uint32_t u = std::bit_cast<uint32_t>(x);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) {
    return BF16{static_cast<uint16_t>((u >> 16) | 0x0040u)};
  }
  // Adding 0x7FFF (+1 when the kept LSB is odd) carries into bit 16 exactly when the dropped
  // half is above the midpoint, or at it with an odd kept part: RNE. A carry out of the
  // mantissa bumps the exponent, which is also what makes overflow land on inf.
  const uint32_t rounding_bias = 0x7FFFu + ((u >> 16) & 1u);
  return BF16{static_cast<uint16_t>((u + rounding_bias) >> 16)};
}

// x rounded to the nearest BF16 value, as an FP32.
inline float RoundBf16(float x) { return Bf16ToF32(F32ToBf16(x)); }

}  // namespace dsv4
