// Finding NaN and infinite values in stored floating-point data, in the encodings of
// checkpoint tensors (safetensors: little-endian, possibly unaligned). One NaN in a norm weight
// makes every logit NaN, so model loading refuses such tensors (checkpoint::TensorReader).
//
// Which stored values are not finite, by dtype (an element is non-finite exactly when the bits
// under the mask are all ones; NaN when any other magnitude bit is set, else ±Inf):
//   F64 0x7FF0000000000000, F32 0x7F800000, F16 0x7C00, BF16 0x7F80 (exponent all ones);
//   F8_E4M3 (e4m3fn) 0x7F: S.1111.111 is NaN, the format has no Inf;
//   F8_E8M0 0xFF: NaN, the only non-finite code.
// Integer dtypes, and packed FP4 E2M1 stored as I8 (every code is finite), are never
// non-finite.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "core/dtype.h"

namespace dsv4 {

enum class NonFiniteKind : uint8_t { kNaN, kPosInf, kNegInf };

// "NaN", "+Inf", "-Inf".
std::string_view NonFiniteName(NonFiniteKind kind);

struct NonFiniteElement {
  int64_t index = 0;  // element index, row-major
  NonFiniteKind kind = NonFiniteKind::kNaN;
  uint64_t bits = 0;  // the element's stored bits
};

// Whether some value of `dtype` is NaN or infinite (false for integers and FP4-as-I8).
bool CanBeNonFinite(DType dtype);

// The first NaN or infinite element of `bytes`, read as bytes.size() / DTypeSize(dtype)
// elements of `dtype` (trailing bytes of a partial element are ignored); nullopt when every
// element is finite or CanBeNonFinite(dtype) is false. One pass over the bytes: blocks of
// 4,096 elements are tested with a flat integer loop the compiler vectorises (SSE2 at the
// baseline -O2: 16 bytes per instruction), and only a block that holds a non-finite element is
// walked again element by element. Pure and thread-safe.
std::optional<NonFiniteElement> FindNonFinite(DType dtype, std::span<const std::byte> bytes);

}  // namespace dsv4
