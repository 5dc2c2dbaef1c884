// Element types of checkpoint tensors, named as in the safetensors header.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace dsv4 {

enum class DType : uint8_t {
  kF64,
  kF32,
  kF16,
  kBF16,
  kF8E4M3,  // "F8_E4M3": e4m3fn, max 448, no inf
  kF8E8M0,  // "F8_E8M0": unsigned power-of-two scale 2^(b-127), 0xFF = NaN
  kI64,
  kI32,
  kI16,
  kI8,      // also the storage of packed FP4 (E2M1 x2, low nibble first)
  kU8,
  kBool,
};

// Bytes per element (packed FP4 is stored as I8 with half the logical columns).
size_t DTypeSize(DType t);
// The safetensors name, e.g. "F8_E4M3".
std::string_view DTypeName(DType t);
// Parses a safetensors dtype name; nullopt when unknown.
std::optional<DType> ParseDType(std::string_view name);

}  // namespace dsv4
