#include "core/dtype.h"

#include <array>
#include <utility>

namespace dsv4 {
namespace {

struct DTypeEntry {
  DType type;
  std::string_view name;
  size_t size;
};

constexpr std::array<DTypeEntry, 12> kDTypes = {{
    {DType::kF64, "F64", 8},     {DType::kF32, "F32", 4},         {DType::kF16, "F16", 2},
    {DType::kBF16, "BF16", 2},   {DType::kF8E4M3, "F8_E4M3", 1},  {DType::kF8E8M0, "F8_E8M0", 1},
    {DType::kI64, "I64", 8},     {DType::kI32, "I32", 4},         {DType::kI16, "I16", 2},
    {DType::kI8, "I8", 1},       {DType::kU8, "U8", 1},           {DType::kBool, "BOOL", 1},
}};

}  // namespace

size_t DTypeSize(DType t) { return kDTypes[static_cast<size_t>(t)].size; }

std::string_view DTypeName(DType t) { return kDTypes[static_cast<size_t>(t)].name; }

std::optional<DType> ParseDType(std::string_view name) {
  for (const auto& e : kDTypes) {
    if (e.name == name) return e.type;
  }
  return std::nullopt;
}

}  // namespace dsv4
