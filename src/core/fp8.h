// 8-bit formats of the checkpoint and of activation quantisation (spec §4.1):
//  * E4M3FN: 1 sign, 4 exponent (bias 7), 3 mantissa bits; max ±448, no inf,
//    NaN = 0x7F / 0xFF; subnormals are multiples of 2^-9.
//  * E8M0 (E8M0FNU): unsigned exponent-only scale, value 2^(b-127), 0xFF = NaN.
#pragma once

#include <cstdint>

namespace dsv4 {

inline constexpr float kE4M3Max = 448.0f;
inline constexpr uint8_t kE4M3NaN = 0x7F;  // | 0x80 for the negative NaN
inline constexpr uint8_t kE8M0NaN = 0xFF;

// Exact decode of an E4M3FN code; 0x7F / 0xFF give a quiet NaN with that sign.
float E4M3ToF32(uint8_t code);

// Round-to-nearest-even encode, bit-exact to PyTorch's c10 float8_e4m3fn conversion:
//  * |x| >= 480 (the first value past the format), ±inf and NaN give 0x7F | sign (NaN);
//  * values in (464, 480) round up past 448 and also give 0x7F | sign; 464 is a tie and
//    goes to the even 448;
//  * values below 2^-6 round onto the subnormal grid (2^-9 steps); -0 and negative values
//    that round to zero give 0x80.
// The quantisers clamp to ±448 first (§4.4 step 3), so they never produce NaN from finite input.
uint8_t F32ToE4M3(float x);

// 2^(b-127) for b in 0..254 (b = 0 is 2^-127, an FP32 subnormal); NaN for 0xFF.
float E8M0ToF32(uint8_t b);

// The E8M0 code of s. s must be an exact power of two in [2^-127, 2^127] (DSV4_CHECK):
// scales come from Ue8m0Scale, so anything else is a bug.
uint8_t E8M0FromPow2(float s);

}  // namespace dsv4
