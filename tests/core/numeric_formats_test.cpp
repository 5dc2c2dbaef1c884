// Bit-exactness of the element formats (core/bf16.h, fp8.h, fp4.h) against slow, independent
// references: nearest representable value chosen by brute force in double arithmetic.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "core/bf16.h"
#include "core/fp4.h"
#include "core/fp8.h"

namespace dsv4 {
namespace {

uint32_t Bits(float x) { return std::bit_cast<uint32_t>(x); }
float FromBits(uint32_t u) { return std::bit_cast<float>(u); }

// ---- BF16 reference -----------------------------------------------------------------------

// Magnitude of the non-negative BF16 code m (0..0x7F80) in double, from the format definition.
// 0x7F80 comes out as 2^128, which is where IEEE rounding puts the overflow threshold.
double Bf16Magnitude(uint32_t m) {
  const int exp = static_cast<int>(m >> 7);
  const double mant = static_cast<double>(m & 0x7F);
  if (exp == 0) return std::ldexp(mant, -133);
  return std::ldexp(128.0 + mant, exp - 134);
}

// Nearest BF16 (ties to the even code) by binary search over the monotonic magnitude codes.
uint16_t RefF32ToBf16(float f) {
  const double a = std::fabs(static_cast<double>(f));
  uint32_t lo = 0, hi = 0x7F80;  // invariant: Bf16Magnitude(lo) <= a
  if (a >= Bf16Magnitude(hi)) {
    lo = hi;
  } else {
    while (hi - lo > 1) {
      const uint32_t mid = (lo + hi) / 2;
      (Bf16Magnitude(mid) <= a ? lo : hi) = mid;
    }
  }
  uint32_t m = lo;
  if (lo < 0x7F80) {
    const double below = a - Bf16Magnitude(lo);
    const double above = Bf16Magnitude(lo + 1) - a;
    if (above < below || (above == below && (lo & 1))) m = lo + 1;
  }
  return static_cast<uint16_t>(m | (std::signbit(f) ? 0x8000u : 0u));
}

TEST(Bf16Test, LayoutIsTwoPlainBytes) {
  static_assert(sizeof(BF16) == 2);
  EXPECT_EQ(BF16{}.bits, 0);
}

TEST(Bf16Test, DecodeKnownValues) {
  EXPECT_EQ(Bf16ToF32(BF16{0x3F80}), 1.0f);
  EXPECT_EQ(Bf16ToF32(BF16{0xC000}), -2.0f);
  EXPECT_EQ(Bf16ToF32(BF16{0x4049}), 3.140625f);
  EXPECT_EQ(Bf16ToF32(BF16{0x7F7F}), 0x1.FEp127f);
  EXPECT_EQ(Bf16ToF32(BF16{0x0001}), 0x1p-133f);
  EXPECT_EQ(Bf16ToF32(BF16{0x7F80}), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::signbit(Bf16ToF32(BF16{0x8000})));
  EXPECT_TRUE(std::isnan(Bf16ToF32(BF16{0xFFC1})));
}

TEST(Bf16Test, AllCodesRoundTrip) {
  for (uint32_t c = 0; c < 65536; ++c) {
    const float f = Bf16ToF32(BF16{static_cast<uint16_t>(c)});
    const uint16_t back = F32ToBf16(f).bits;
    if (std::isnan(f)) {
      // NaNs stay NaN with their sign; quiet ones keep their exact bits.
      EXPECT_TRUE(std::isnan(Bf16ToF32(BF16{back}))) << std::hex << c;
      EXPECT_EQ(back & 0x8000u, c & 0x8000u) << std::hex << c;
      EXPECT_NE(back & 0x0040u, 0u) << std::hex << c;
      if (c & 0x0040u) {
        EXPECT_EQ(back, c) << std::hex << c;
      }
    } else {
      ASSERT_EQ(back, c) << std::hex << c;
    }
  }
}

TEST(Bf16Test, EdgeCases) {
  struct Case {
    uint32_t f32;
    uint16_t bf16;
  };
  const Case cases[] = {
      {0x3F808000, 0x3F80},  // tie, even kept part: down
      {0x3F818000, 0x3F82},  // tie, odd kept part: up
      {0x3F808001, 0x3F81},  // just above the tie
      {0x3F807FFF, 0x3F80},  // just below the tie
      {0xBF818000, 0xBF82},  // sign does not change the rounding
      {0x7F7F7FFF, 0x7F7F},  // largest float still rounding to the largest BF16
      {0x7F7F8000, 0x7F80},  // tie above the largest BF16 (odd): overflows to inf
      {0x7F7FFFFF, 0x7F80},  // FLT_MAX -> inf, like PyTorch
      {0xFF7FFFFF, 0xFF80},  // -FLT_MAX -> -inf
      {0x7F800000, 0x7F80},  // inf
      {0xFF800000, 0xFF80},  // -inf
      {0x00000000, 0x0000},  // +0
      {0x80000000, 0x8000},  // -0 keeps its sign
      {0x00000001, 0x0000},  // smallest subnormal rounds to 0
      {0x80000001, 0x8000},  // ... to -0 when negative
      {0x00008000, 0x0000},  // subnormal tie, even: down
      {0x00018000, 0x0002},  // subnormal tie, odd: up
      {0x007FFFFF, 0x0080},  // largest subnormal rounds up into the normals
      {0x7FC00000, 0x7FC0},  // quiet NaN
      {0xFFC00000, 0xFFC0},  // negative quiet NaN keeps its sign
      {0x7F800001, 0x7FC0},  // signalling NaN with low payload: quiet, not inf
      {0xFF810000, 0xFFC1},  // signalling NaN: payload kept, made quiet
  };
  for (const Case& c : cases) {
    EXPECT_EQ(F32ToBf16(FromBits(c.f32)).bits, c.bf16) << std::hex << c.f32;
  }
  EXPECT_EQ(RoundBf16(1.00390625f), 1.0f);
  EXPECT_EQ(RoundBf16(1.01171875f), 1.015625f);
}

// Every BF16 high half with the low halves that decide rounding (0, 1, below/at/above the
// midpoint, all ones) and a random one: 458k inputs, every exponent and sign.
TEST(Bf16Test, MatchesReferenceOnStructuredSweep) {
  std::mt19937 rng(1);
  uint32_t lows[] = {0x0000, 0x0001, 0x7FFF, 0x8000, 0x8001, 0xFFFF, 0 /* random */};
  for (uint32_t hi = 0; hi < 65536; ++hi) {
    lows[6] = rng() & 0xFFFF;
    for (uint32_t low : lows) {
      const float f = FromBits((hi << 16) | low);
      if (std::isnan(f)) continue;
      ASSERT_EQ(F32ToBf16(f).bits, RefF32ToBf16(f)) << std::hex << Bits(f);
    }
  }
}

TEST(Bf16Test, MatchesReferenceOnRandomBitPatterns) {
  std::mt19937 rng(2);
  int checked = 0;
  for (int i = 0; i < 4'000'000; ++i) {
    const float f = FromBits(rng());
    if (std::isnan(f)) {
      const uint16_t b = F32ToBf16(f).bits;
      ASSERT_TRUE(std::isnan(Bf16ToF32(BF16{b})));
      ASSERT_EQ(b >> 15, Bits(f) >> 31);
      continue;
    }
    ASSERT_EQ(F32ToBf16(f).bits, RefF32ToBf16(f)) << std::hex << Bits(f);
    ++checked;
  }
  EXPECT_GT(checked, 3'900'000);
}

// ---- E4M3 reference -----------------------------------------------------------------------

// Value of the non-negative code c (0..0x7F) from the format definition; 0x7F (NaN in E4M3FN)
// stands for 480, the value the c10 encoder rounds towards before calling it NaN.
double E4M3Magnitude(int c) {
  if (c == 0x7F) return 480.0;
  const int exp = c >> 3, mant = c & 7;
  if (exp == 0) return std::ldexp(mant, -9);
  return std::ldexp(1.0 + mant / 8.0, exp - 7);
}

// Brute-force nearest code, ties to the even code (= even mantissa); >= 480 and NaN are NaN.
uint8_t RefF32ToE4M3(float f) {
  const uint8_t sign = std::signbit(f) ? 0x80 : 0x00;
  const double a = std::fabs(static_cast<double>(f));
  if (std::isnan(f) || a >= 480.0) return sign | 0x7F;
  int best = 0;
  for (int c = 1; c <= 0x7F; ++c) {
    const double d = std::fabs(E4M3Magnitude(c) - a), best_d = std::fabs(E4M3Magnitude(best) - a);
    if (d < best_d || (d == best_d && (c & 1) == 0)) best = c;
  }
  return static_cast<uint8_t>(sign | best);
}

TEST(E4M3Test, DecodeKnownCodes) {
  struct Case {
    uint8_t code;
    float value;
  };
  const Case cases[] = {
      {0x00, 0.0f},        {0x01, 0x1p-9f}, {0x02, 0x1p-8f}, {0x07, 7 * 0x1p-9f}, {0x08, 0x1p-6f},
      {0x09, 1.125f / 64}, {0x28, 0.25f},   {0x30, 0.5f},    {0x38, 1.0f},        {0x3F, 1.875f},
      {0x40, 2.0f},        {0x46, 3.5f},    {0x77, 240.0f},  {0x78, 256.0f},      {0x7E, 448.0f},
      {0x81, -0x1p-9f},    {0xB8, -1.0f},   {0xC0, -2.0f},   {0xFE, -448.0f},
  };
  for (const Case& c : cases) EXPECT_EQ(E4M3ToF32(c.code), c.value) << std::hex << +c.code;
  EXPECT_EQ(Bits(E4M3ToF32(0x80)), 0x80000000u);  // -0
  EXPECT_TRUE(std::isnan(E4M3ToF32(0x7F)));
  EXPECT_TRUE(std::isnan(E4M3ToF32(0xFF)));
  EXPECT_TRUE(std::signbit(E4M3ToF32(0xFF)));
}

TEST(E4M3Test, AllCodesDecodeAndRoundTrip) {
  int nan_codes = 0;
  for (int c = 0; c < 256; ++c) {
    const float v = E4M3ToF32(static_cast<uint8_t>(c));
    if ((c & 0x7F) == 0x7F) {
      EXPECT_TRUE(std::isnan(v));
      ++nan_codes;
      continue;
    }
    const double expected = (c & 0x80 ? -1.0 : 1.0) * E4M3Magnitude(c & 0x7F);
    EXPECT_EQ(static_cast<double>(v), expected) << c;
    EXPECT_EQ(std::signbit(v), (c & 0x80) != 0) << c;
    EXPECT_EQ(F32ToE4M3(v), c) << c;
  }
  EXPECT_EQ(nan_codes, 2);
}

TEST(E4M3Test, EncodeEdgeCases) {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(F32ToE4M3(0.0f), 0x00);
  EXPECT_EQ(F32ToE4M3(-0.0f), 0x80);
  EXPECT_EQ(F32ToE4M3(0x1p-10f), 0x00);        // tie between 0 and 2^-9: even 0
  EXPECT_EQ(F32ToE4M3(-0x1p-11f), 0x80);       // rounds to -0
  EXPECT_EQ(F32ToE4M3(3 * 0x1p-10f), 0x02);    // tie between 1 and 2 (x 2^-9): even 2
  EXPECT_EQ(F32ToE4M3(7.5f * 0x1p-9f), 0x08);  // subnormal tie rounds up into the normals
  EXPECT_EQ(F32ToE4M3(8.5f * 0x1p-9f), 0x08);  // tie just above 2^-6: even mantissa 0
  EXPECT_EQ(F32ToE4M3(1.0625f), 0x38);         // tie 1 / 1.125: even
  EXPECT_EQ(F32ToE4M3(1.1875f), 0x3A);         // tie 1.125 / 1.25: even (1.25)
  EXPECT_EQ(F32ToE4M3(448.0f), 0x7E);
  EXPECT_EQ(F32ToE4M3(464.0f), 0x7E);                        // tie 448 / (480): even 448
  EXPECT_EQ(F32ToE4M3(std::nextafter(464.0f, kInf)), 0x7F);  // rounds past 448: NaN (c10)
  EXPECT_EQ(F32ToE4M3(-std::nextafter(464.0f, kInf)), 0xFF);
  EXPECT_EQ(F32ToE4M3(std::nextafter(480.0f, 0.0f)), 0x7F);
  EXPECT_EQ(F32ToE4M3(480.0f), 0x7F);
  EXPECT_EQ(F32ToE4M3(-1e10f), 0xFF);
  EXPECT_EQ(F32ToE4M3(kInf), 0x7F);
  EXPECT_EQ(F32ToE4M3(-kInf), 0xFF);
  EXPECT_EQ(F32ToE4M3(std::numeric_limits<float>::quiet_NaN()), 0x7F);
  EXPECT_EQ(F32ToE4M3(-std::numeric_limits<float>::quiet_NaN()), 0xFF);
}

TEST(E4M3Test, MatchesReferenceOnEveryBf16Value) {
  for (uint32_t c = 0; c < 65536; ++c) {
    const float f = Bf16ToF32(BF16{static_cast<uint16_t>(c)});
    ASSERT_EQ(F32ToE4M3(f), RefF32ToE4M3(f)) << std::hex << c;
  }
}

// Random FP32 values concentrated on the E4M3 range (2^-12 .. 2^9) with full 23-bit mantissas,
// plus exact midpoints between neighbouring codes.
TEST(E4M3Test, MatchesReferenceOnRandomFloats) {
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> exp_dist(-12, 9);
  for (int i = 0; i < 200'000; ++i) {
    const uint32_t mant = rng() & 0x007FFFFFu;
    const uint32_t exp = static_cast<uint32_t>(exp_dist(rng) + 127);
    const float f = FromBits((rng() & 0x80000000u) | (exp << 23) | mant);
    ASSERT_EQ(F32ToE4M3(f), RefF32ToE4M3(f)) << std::hex << Bits(f);
  }
  for (int c = 0; c < 0x7E; ++c) {
    const float mid = static_cast<float>((E4M3Magnitude(c) + E4M3Magnitude(c + 1)) / 2);
    for (float f : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e9f), -mid}) {
      ASSERT_EQ(F32ToE4M3(f), RefF32ToE4M3(f)) << f;
    }
  }
}

// ---- E2M1 ---------------------------------------------------------------------------------

constexpr double kE2M1Grid[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};

// Nearest grid point, ties to the even code; |x| > 6 lands on 6 by nearness.
uint8_t RefF32ToE2M1(float f) {
  const double a = std::fabs(static_cast<double>(f));
  int best = 0;
  for (int c = 1; c < 8; ++c) {
    const double d = std::fabs(kE2M1Grid[c] - a), best_d = std::fabs(kE2M1Grid[best] - a);
    if (d < best_d || (d == best_d && (c & 1) == 0)) best = c;
  }
  return static_cast<uint8_t>((std::signbit(f) ? 8 : 0) | best);
}

TEST(E2M1Test, AllCodesDecode) {
  const float expected[16] = {0,     0.5f,  1,  1.5f,  2,  3,  4,  6,
                              -0.0f, -0.5f, -1, -1.5f, -2, -3, -4, -6};
  for (int c = 0; c < 16; ++c) {
    const float v = E2M1ToF32(static_cast<uint8_t>(c));
    EXPECT_EQ(v, expected[c]) << c;
    EXPECT_EQ(std::signbit(v), c >= 8) << c;
    EXPECT_EQ(F32ToE2M1(v), c) << c;
    EXPECT_EQ(E2M1ToF32(static_cast<uint8_t>(c | 0xF0)), v) << "high bits must be ignored";
  }
}

TEST(E2M1Test, MidpointsRoundToEven) {
  struct Case {
    float x;
    uint8_t code;
  };
  const Case cases[] = {{0.25f, 0}, {0.75f, 2}, {1.25f, 2},  {1.75f, 4},   {2.5f, 4},
                        {3.5f, 6},  {5.0f, 6},  {-0.25f, 8}, {-0.75f, 10}, {-5.0f, 14}};
  for (const Case& c : cases) {
    EXPECT_EQ(F32ToE2M1(c.x), c.code) << c.x;
    const float up = std::nextafter(c.x, c.x > 0 ? 100.0f : -100.0f);
    const float down = std::nextafter(c.x, 0.0f);
    EXPECT_EQ(F32ToE2M1(up), RefF32ToE2M1(up)) << up;
    EXPECT_EQ(F32ToE2M1(down), RefF32ToE2M1(down)) << down;
    EXPECT_NE(F32ToE2M1(up), F32ToE2M1(down)) << "a midpoint must separate two codes";
  }
}

TEST(E2M1Test, SaturatesAndKeepsSign) {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(F32ToE2M1(6.0f), 7);
  EXPECT_EQ(F32ToE2M1(7.0f), 7);
  EXPECT_EQ(F32ToE2M1(1e30f), 7);
  EXPECT_EQ(F32ToE2M1(-100.0f), 15);
  EXPECT_EQ(F32ToE2M1(kInf), 7);
  EXPECT_EQ(F32ToE2M1(-kInf), 15);
  EXPECT_EQ(F32ToE2M1(std::numeric_limits<float>::quiet_NaN()), 7);
  EXPECT_EQ(F32ToE2M1(-0.0f), 8);
  EXPECT_EQ(F32ToE2M1(-0.1f), 8);
  EXPECT_EQ(F32ToE2M1(0.1f), 0);
}

TEST(E2M1Test, MatchesReferenceOnEveryBf16InRange) {
  int checked = 0;
  for (uint32_t c = 0; c < 65536; ++c) {
    const float f = Bf16ToF32(BF16{static_cast<uint16_t>(c)});
    if (!(std::fabs(f) <= 8.0f)) continue;
    ASSERT_EQ(F32ToE2M1(f), RefF32ToE2M1(f)) << f;
    ++checked;
  }
  EXPECT_GT(checked, 30000);
}

TEST(E2M1Test, PackingPutsEvenElementInLowNibble) {
  EXPECT_EQ(PackE2M1(0x1, 0xA), 0xA1);
  EXPECT_EQ(PackE2M1(0xF1, 0x3C), 0xC1);  // only the low 4 bits of each code are used
  EXPECT_EQ(E2M1Low(0xA1), 0x1);
  EXPECT_EQ(E2M1High(0xA1), 0xA);
  for (int b = 0; b < 256; ++b) {
    const uint8_t byte = static_cast<uint8_t>(b);
    EXPECT_EQ(PackE2M1(E2M1Low(byte), E2M1High(byte)), byte);
  }
}

// ---- E8M0 ---------------------------------------------------------------------------------

TEST(E8M0Test, AllCodes) {
  for (int b = 0; b < 255; ++b) {
    const float v = E8M0ToF32(static_cast<uint8_t>(b));
    EXPECT_EQ(v, std::ldexp(1.0f, b - 127)) << b;
    EXPECT_EQ(E8M0FromPow2(v), b) << b;
  }
  EXPECT_EQ(Bits(E8M0ToF32(0)), 0x00400000u);  // 2^-127, an FP32 subnormal
  EXPECT_EQ(E8M0ToF32(127), 1.0f);
  EXPECT_EQ(E8M0ToF32(254), 0x1p127f);
  EXPECT_TRUE(std::isnan(E8M0ToF32(0xFF)));
}

TEST(E8M0DeathTest, RejectsNonPowersOfTwo) {
  EXPECT_DEATH(E8M0FromPow2(3.0f), "check failed");
  EXPECT_DEATH(E8M0FromPow2(0.0f), "check failed");
  EXPECT_DEATH(E8M0FromPow2(-1.0f), "check failed");
  EXPECT_DEATH(E8M0FromPow2(0x1p-128f), "check failed");
  EXPECT_DEATH(E8M0FromPow2(std::numeric_limits<float>::infinity()), "check failed");
}

}  // namespace
}  // namespace dsv4
