#include "core/fp4.h"

#include <bit>
#include <cmath>

namespace dsv4 {

float E2M1ToF32(uint8_t code) {
  static constexpr float kValues[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
  const float v = kValues[code & 0x07u];
  return (code & 0x08u) ? -v : v;
}

uint8_t F32ToE2M1(float x) {
  const uint8_t sign = (std::bit_cast<uint32_t>(x) >> 31) ? 0x08u : 0x00u;
  const float a = std::fabs(x);
  if (std::isnan(a)) return sign | 0x07u;
  // Decision points are the midpoints between neighbouring grid values. At a midpoint the even
  // code wins: "<=" keeps the lower neighbour when it is even (codes 0, 2, 4, 6), "<" moves up
  // when the upper one is even. Everything above 5 (incl. inf) saturates to 6.
  uint8_t code;
  if (a <= 0.25f) {
    code = 0;
  } else if (a < 0.75f) {
    code = 1;
  } else if (a <= 1.25f) {
    code = 2;
  } else if (a < 1.75f) {
    code = 3;
  } else if (a <= 2.5f) {
    code = 4;
  } else if (a < 3.5f) {
    code = 5;
  } else if (a <= 5.0f) {
    code = 6;
  } else {
    code = 7;
  }
  return sign | code;
}

}  // namespace dsv4
