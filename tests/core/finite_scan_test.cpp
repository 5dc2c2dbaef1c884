// FindNonFinite (core/finite_scan.h): every code of the 8- and 16-bit formats against the
// decoders' own NaN/Inf, FP32 special values, and the first bad element found at any position
// (block boundaries of the vectorised pass, unaligned data).
#include "core/finite_scan.h"

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include <gtest/gtest.h>

#include "core/bf16.h"
#include "core/fp8.h"

namespace dsv4 {
namespace {

template <typename U>
std::vector<std::byte> Bytes(const std::vector<U>& v) {
  std::vector<std::byte> b(v.size() * sizeof(U));
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// What a decoded value says: nullopt when finite.
std::optional<NonFiniteKind> KindOf(float x) {
  if (std::isnan(x)) return NonFiniteKind::kNaN;
  if (std::isinf(x)) return x > 0 ? NonFiniteKind::kPosInf : NonFiniteKind::kNegInf;
  return std::nullopt;
}

void ExpectSingle(DType dtype, std::span<const std::byte> bytes, std::optional<NonFiniteKind> want,
                  uint64_t code) {
  const std::optional<NonFiniteElement> got = FindNonFinite(dtype, bytes);
  ASSERT_EQ(got.has_value(), want.has_value()) << DTypeName(dtype) << " code " << code;
  if (!got) return;
  EXPECT_EQ(got->index, 0);
  EXPECT_EQ(got->kind, *want) << DTypeName(dtype) << " code " << code;
  EXPECT_EQ(got->bits, code);
}

TEST(FindNonFinite, EveryEightBitCodeAgreesWithItsDecoder) {
  for (uint32_t c = 0; c < 256; ++c) {
    const std::byte b[1] = {static_cast<std::byte>(c)};
    ExpectSingle(DType::kF8E4M3, b, KindOf(E4M3ToF32(static_cast<uint8_t>(c))), c);
    ExpectSingle(DType::kF8E8M0, b, KindOf(E8M0ToF32(static_cast<uint8_t>(c))), c);
    // Packed FP4 (I8) and the other integer types are never non-finite.
    for (DType t : {DType::kI8, DType::kU8, DType::kBool}) EXPECT_FALSE(FindNonFinite(t, b));
  }
}

TEST(FindNonFinite, EverySixteenBitCodeAgreesWithItsDecoder) {
  for (uint32_t c = 0; c < 65536; ++c) {
    const std::vector<std::byte> b = Bytes(std::vector<uint16_t>{static_cast<uint16_t>(c)});
    ExpectSingle(DType::kBF16, b, KindOf(Bf16ToF32(BF16{static_cast<uint16_t>(c)})), c);
    // F16: exponent 0x1F is Inf (mantissa 0) or NaN.
    std::optional<NonFiniteKind> f16;
    if ((c & 0x7C00) == 0x7C00) {
      f16 = (c & 0x3FF) ? NonFiniteKind::kNaN
                        : (c & 0x8000 ? NonFiniteKind::kNegInf : NonFiniteKind::kPosInf);
    }
    ExpectSingle(DType::kF16, b, f16, c);
    EXPECT_FALSE(FindNonFinite(DType::kI16, b));
  }
}

TEST(FindNonFinite, Fp32AndFp64SpecialValues) {
  const float kInf = std::numeric_limits<float>::infinity();
  for (float x : {0.0f, -0.0f, 1.0f, std::numeric_limits<float>::max(),
                  -std::numeric_limits<float>::max(), std::numeric_limits<float>::denorm_min(),
                  kInf, -kInf, std::numeric_limits<float>::quiet_NaN(), -std::nanf("7"),
                  std::numeric_limits<float>::signaling_NaN()}) {
    ExpectSingle(DType::kF32, Bytes(std::vector<float>{x}), KindOf(x), std::bit_cast<uint32_t>(x));
    const double d = x;
    ExpectSingle(DType::kF64, Bytes(std::vector<double>{d}), KindOf(x), std::bit_cast<uint64_t>(d));
  }
}

// The first bad element wherever it is: around the 4,096-element blocks of the vectorised
// pass and in the scalar tail, with the data starting at an odd address.
TEST(FindNonFinite, FindsTheFirstBadElementAtAnyPositionUnaligned) {
  const int64_t n = 3 * 4096 + 77;
  for (int64_t pos : {int64_t{0}, int64_t{1}, int64_t{4095}, int64_t{4096}, int64_t{4097},
                      int64_t{2 * 4096 + 5}, int64_t{3 * 4096}, n - 1}) {
    std::vector<uint16_t> v(static_cast<size_t>(n), 0x3F80);  // BF16 1.0
    v[static_cast<size_t>(pos)] = 0x7F80;                     // +Inf
    if (pos + 3 < n) v[static_cast<size_t>(pos + 3)] = 0x7FC0;  // a later NaN
    std::vector<std::byte> b(1 + v.size() * 2);
    std::memcpy(b.data() + 1, v.data(), v.size() * 2);
    const std::span<const std::byte> odd(b.data() + 1, v.size() * 2);
    const std::optional<NonFiniteElement> got = FindNonFinite(DType::kBF16, odd);
    ASSERT_TRUE(got) << pos;
    EXPECT_EQ(got->index, pos);
    EXPECT_EQ(got->kind, NonFiniteKind::kPosInf);

    std::vector<uint8_t> e4m3(static_cast<size_t>(n), 0x38);  // 1.0
    e4m3[static_cast<size_t>(pos)] = 0x7F;
    const std::optional<NonFiniteElement> g8 = FindNonFinite(DType::kF8E4M3, Bytes(e4m3));
    ASSERT_TRUE(g8) << pos;
    EXPECT_EQ(g8->index, pos);
    EXPECT_EQ(g8->kind, NonFiniteKind::kNaN);
  }
  const std::vector<float> finite(static_cast<size_t>(n), -2.5f);
  EXPECT_FALSE(FindNonFinite(DType::kF32, Bytes(finite)));
  EXPECT_FALSE(FindNonFinite(DType::kF32, {}));
}

TEST(FindNonFinite, IgnoresTheBytesOfAPartialTrailingElement) {
  const std::vector<std::byte> b = {std::byte{0x80}, std::byte{0x3F}, std::byte{0xFF}};
  EXPECT_FALSE(FindNonFinite(DType::kBF16, b));
  EXPECT_EQ(NonFiniteName(NonFiniteKind::kNegInf), "-Inf");
}

}  // namespace
}  // namespace dsv4
