#include "core/finite_scan.h"

#include <cstring>

namespace dsv4 {
namespace {

// Elements tested per block before looking for the first bad one. A constant trip count lets
// GCC's -O2 ("very cheap") vectoriser take the loop with no scalar epilogue.
constexpr int64_t kBlock = 4096;

template <typename U>
U Load(const std::byte* p, int64_t i) {
  U u;
  std::memcpy(&u, p + i * static_cast<int64_t>(sizeof(U)), sizeof(U));
  return u;
}

// Whether any of the kBlock elements at `p` has all `mask` bits set. No early exit: the OR
// reduction is what vectorises.
template <typename U>
bool BlockHasMatch(const std::byte* p, U mask) {
  unsigned any = 0;
  for (int64_t i = 0; i < kBlock; ++i) any |= static_cast<unsigned>((Load<U>(p, i) & mask) == mask);
  return any != 0;
}

// Index of the first of `n` elements at `p` with all `mask` bits set, or -1.
template <typename U>
int64_t FirstMatch(const std::byte* p, int64_t n, U mask) {
  int64_t begin = 0;
  for (; begin + kBlock <= n; begin += kBlock) {
    if (BlockHasMatch<U>(p + begin * static_cast<int64_t>(sizeof(U)), mask)) break;
  }
  for (int64_t i = begin; i < n; ++i) {
    if ((Load<U>(p, i) & mask) == mask) return i;
  }
  return -1;
}

// The element at `i` of a dtype with an IEEE-style sign and exponent (`exp_mask`): NaN when a
// mantissa bit is set, else ±Inf. `sign_mask` 0 for the unsigned / Inf-less 8-bit formats,
// whose only non-finite codes are NaN.
template <typename U>
std::optional<NonFiniteElement> Scan(std::span<const std::byte> bytes, U exp_mask, U sign_mask,
                                     bool has_inf) {
  const int64_t n = static_cast<int64_t>(bytes.size() / sizeof(U));
  const int64_t i = FirstMatch<U>(bytes.data(), n, exp_mask);
  if (i < 0) return std::nullopt;
  const U bits = Load<U>(bytes.data(), i);
  const U mantissa = static_cast<U>(bits & ~exp_mask & ~sign_mask);
  NonFiniteKind kind = NonFiniteKind::kNaN;
  if (has_inf && mantissa == 0) {
    kind = (bits & sign_mask) != 0 ? NonFiniteKind::kNegInf : NonFiniteKind::kPosInf;
  }
  return NonFiniteElement{i, kind, static_cast<uint64_t>(bits)};
}

}  // namespace

std::string_view NonFiniteName(NonFiniteKind kind) {
  switch (kind) {
    case NonFiniteKind::kNaN:
      return "NaN";
    case NonFiniteKind::kPosInf:
      return "+Inf";
    case NonFiniteKind::kNegInf:
      return "-Inf";
  }
  return "?";
}

bool CanBeNonFinite(DType dtype) {
  switch (dtype) {
    case DType::kF64:
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
    case DType::kF8E4M3:
    case DType::kF8E8M0:
      return true;
    default:
      return false;
  }
}

std::optional<NonFiniteElement> FindNonFinite(DType dtype, std::span<const std::byte> bytes) {
  switch (dtype) {
    case DType::kF64:
      return Scan<uint64_t>(bytes, 0x7FF0000000000000ull, 0x8000000000000000ull, true);
    case DType::kF32:
      return Scan<uint32_t>(bytes, 0x7F800000u, 0x80000000u, true);
    case DType::kF16:
      return Scan<uint16_t>(bytes, 0x7C00, 0x8000, true);
    case DType::kBF16:
      return Scan<uint16_t>(bytes, 0x7F80, 0x8000, true);
    case DType::kF8E4M3:
      return Scan<uint8_t>(bytes, 0x7F, 0x80, false);
    case DType::kF8E8M0:
      return Scan<uint8_t>(bytes, 0xFF, 0, false);
    default:
      return std::nullopt;
  }
}

}  // namespace dsv4
