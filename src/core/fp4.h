// E2M1 (FP4), spec §4.1: 1 sign, 2 exponent, 1 mantissa bit. Codes 0..7 are
// 0, 0.5, 1, 1.5, 2, 3, 4, 6; bit 3 is the sign (8 is -0). No inf, no NaN.
// Packed storage (routed experts, int8 [out, in/2]): byte k/2 of a row holds element k (even)
// in the low nibble and element k+1 in the high nibble.
#pragma once

#include <cstdint>

namespace dsv4 {

inline constexpr float kE2M1Max = 6.0f;

// Value of the low 4 bits of `code` (the high bits are ignored).
float E2M1ToF32(uint8_t code);

// Round-to-nearest-even onto the E2M1 grid (ties go to the even code: 0.25->0, 0.75->1,
// 1.25->1, 1.75->2, 2.5->2, 3.5->4, 5->4), saturating to ±6 (CUDA cvt.rn.satfinite semantics,
// spec §4.5 [U]). The sign is kept, so -0 and small negatives give 8 (-0). ±inf give ±6;
// NaN, which the format cannot hold, also gives ±6 (sign of the NaN). Returns 0..15.
uint8_t F32ToE2M1(float x);

// One byte from two codes: `lo` is the even element, `hi` the odd one.
inline uint8_t PackE2M1(uint8_t lo, uint8_t hi) {
  return static_cast<uint8_t>((lo & 0x0Fu) | ((hi & 0x0Fu) << 4));
}
// The even element's code (low nibble).
inline uint8_t E2M1Low(uint8_t byte) { return byte & 0x0Fu; }
// The odd element's code (high nibble).
inline uint8_t E2M1High(uint8_t byte) { return static_cast<uint8_t>(byte >> 4); }

}  // namespace dsv4
