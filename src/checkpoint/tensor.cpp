#include "checkpoint/tensor.h"

#include <algorithm>
#include <cstdio>
#include <optional>

#include "core/finite_scan.h"

namespace dsv4::checkpoint {

int64_t NumElements(std::span<const int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string ShapeToString(std::span<const int64_t> shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

Result<TensorView> TensorSource::Get(std::string_view name, DType dtype,
                                     std::span<const int64_t> shape) const {
  DSV4_ASSIGN_OR_RETURN(TensorView v, Get(name));
  if (v.dtype != dtype) {
    return Status::InvalidArgument(label() + ": tensor '" + std::string(name) + "' has dtype " +
                                   std::string(DTypeName(v.dtype)) + ", expected " +
                                   std::string(DTypeName(dtype)));
  }
  if (!std::equal(v.shape.begin(), v.shape.end(), shape.begin(), shape.end())) {
    return Status::InvalidArgument(label() + ": tensor '" + std::string(name) + "' has shape " +
                                   ShapeToString(v.shape) + ", expected " + ShapeToString(shape));
  }
  return v;
}

Status TensorSource::CheckFinite(const TensorView& v) const {
  const std::optional<NonFiniteElement> bad = FindNonFinite(v.dtype, v.bytes);
  if (!bad) return Status::Ok();
  char bits[24];
  std::snprintf(bits, sizeof(bits), "0x%0*llx", static_cast<int>(2 * DTypeSize(v.dtype)),
                static_cast<unsigned long long>(bad->bits));
  return Status::DataLoss(FileOf(v.name) + ": tensor '" + std::string(v.name) + "' (" +
                          std::string(DTypeName(v.dtype)) + " " + ShapeToString(v.shape) +
                          ") element " + std::to_string(bad->index) + " is " +
                          std::string(NonFiniteName(bad->kind)) + " (bits " + bits +
                          "), expected finite values");
}

}  // namespace dsv4::checkpoint
