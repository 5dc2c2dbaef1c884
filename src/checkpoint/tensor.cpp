#include "checkpoint/tensor.h"

#include <algorithm>

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

}  // namespace dsv4::checkpoint
