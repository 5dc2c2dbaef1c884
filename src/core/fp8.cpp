#include "core/fp8.h"

#include <array>
#include <bit>
#include <cmath>

#include "core/check.h"

namespace dsv4 {
namespace {

// FP32 bit pattern of an E4M3FN code, built field by field so it is exact by construction.
constexpr uint32_t E4M3Bits(uint8_t code) {
  const uint32_t sign = static_cast<uint32_t>(code & 0x80u) << 24;
  const uint32_t exp = (code >> 3) & 0x0Fu;
  const uint32_t mant = code & 0x07u;
  if (exp == 0x0Fu && mant == 0x07u) return sign | 0x7FC00000u;  // the only NaN codes
  if (exp != 0) return sign | ((exp - 7 + 127) << 23) | (mant << 20);
  if (mant == 0) return sign;  // ±0
  // Subnormal mant * 2^-9: normalise so the leading 1 of the 3-bit mantissa is implicit.
  const int top = std::bit_width(mant) - 1;  // 0, 1 or 2
  const uint32_t frac = (mant << (23 - top)) & 0x007FFFFFu;
  return sign | (static_cast<uint32_t>(top - 9 + 127) << 23) | frac;
}

constexpr std::array<uint32_t, 256> MakeE4M3Table() {
  std::array<uint32_t, 256> t{};
  for (int c = 0; c < 256; ++c) t[c] = E4M3Bits(static_cast<uint8_t>(c));
  return t;
}

// FP32 bits [256] of every E4M3FN code; constexpr so no static-initialisation order issues.
constexpr std::array<uint32_t, 256> kE4M3Bits = MakeE4M3Table();

}  // namespace

float E4M3ToF32(uint8_t code) { return std::bit_cast<float>(kE4M3Bits[code]); }

// Same algorithm as c10::detail::fp8e4m3fn_from_fp32_value, so results match PyTorch bit for
// bit, including which out-of-range values become NaN.
uint8_t F32ToE4M3(float x) {
  constexpr uint32_t kFirstOutOfRange = 0x43F00000u;  // 480.0f
  constexpr uint32_t kMinNormal = 121u << 23;         // 2^-6, smallest E4M3 normal
  // 2^14: its FP32 ulp is 2^-9, the E4M3 subnormal step, so adding it rounds |x| < 2^-6
  // onto the subnormal grid with the FPU's own round-to-nearest-even.
  constexpr uint32_t kDenormMagic = 141u << 23;
  uint32_t bits = std::bit_cast<uint32_t>(x);
  const uint32_t sign = bits & 0x80000000u;
  bits ^= sign;
  uint8_t result;
  if (bits >= kFirstOutOfRange) {  // also ±inf and NaN
    result = kE4M3NaN;
  } else if (bits < kMinNormal) {
    const float sum = std::bit_cast<float>(bits) + std::bit_cast<float>(kDenormMagic);
    result = static_cast<uint8_t>(std::bit_cast<uint32_t>(sum) - kDenormMagic);
  } else {
    // Rebias the exponent and round the 20 dropped mantissa bits to nearest even; a carry
    // out of the mantissa moves to the next binade (448 + more than half an ulp -> 0x7F).
    const uint32_t mant_odd = (bits >> 20) & 1u;
    bits += (static_cast<uint32_t>(7 - 127) << 23) + 0x7FFFFu + mant_odd;
    result = static_cast<uint8_t>(bits >> 20);
  }
  return static_cast<uint8_t>(result | (sign >> 24));
}

float E8M0ToF32(uint8_t b) {
  if (b == kE8M0NaN) return std::bit_cast<float>(0x7FC00000u);
  // b = 0 is 2^-127, below the FP32 normal range: the subnormal with only mantissa bit 22 set.
  if (b == 0) return std::bit_cast<float>(0x00400000u);
  return std::bit_cast<float>(static_cast<uint32_t>(b) << 23);
}

uint8_t E8M0FromPow2(float s) {
  const uint32_t bits = std::bit_cast<uint32_t>(s);
  if (bits == 0x00400000u) return 0;  // 2^-127
  const uint32_t exp = bits >> 23;    // sign bit included: negative s fails below
  DSV4_CHECK_MSG(exp >= 1 && exp <= 254 && (bits & 0x007FFFFFu) == 0,
                 "E8M0 scale must be a power of two in [2^-127, 2^127]");
  return static_cast<uint8_t>(exp);
}

}  // namespace dsv4
