// Tensor views and owned tensors as they come out of (or go into) a checkpoint.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"

namespace dsv4::checkpoint {

// Number of elements of a shape (1 for a scalar shape []).
int64_t NumElements(std::span<const int64_t> shape);
// "[8192, 4096]".
std::string ShapeToString(std::span<const int64_t> shape);

// A read-only, non-owning view of one tensor's bytes (row-major). The bytes stay valid as long
// as the object that produced the view (a mapped file, an in-memory store) lives. The data may
// be unaligned: read elements with memcpy or the typed helpers in the consumers.
struct TensorView {
  std::string_view name;
  DType dtype = DType::kF32;
  std::span<const int64_t> shape;
  std::span<const std::byte> bytes;

  int64_t numel() const { return NumElements(shape); }
};

// A tensor that owns its bytes; what the tiny-model generator produces and writers consume.
struct OwnedTensor {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::vector<std::byte> data;  // NumElements(shape) * DTypeSize(dtype) bytes

  TensorView view() const { return {name, dtype, shape, data}; }
};

// Where weights come from: a checkpoint folder on disk or a model generated in memory.
// Implementations are immutable after construction and safe to read from many threads.
class TensorSource {
 public:
  virtual ~TensorSource() = default;
  // A short label for messages ("/models/x" or "built-in dsv4-tiny").
  virtual std::string label() const = 0;
  // All tensor names, sorted.
  virtual std::vector<std::string> names() const = 0;
  virtual bool Has(std::string_view name) const = 0;
  // NotFound naming the tensor and the source when absent.
  virtual Result<TensorView> Get(std::string_view name) const = 0;
  // Where the bytes of tensor `name` are stored, for messages: its file for a checkpoint
  // folder, label() otherwise.
  virtual std::string FileOf(std::string_view name) const { return label(); }

  // Get with checks: InvalidArgument naming tensor, expected and actual dtype/shape on mismatch.
  Result<TensorView> Get(std::string_view name, DType dtype, std::span<const int64_t> shape) const;

  // OK when no element of `v` (a view from this source) is NaN or infinite (FindNonFinite,
  // core/finite_scan.h); DataLoss naming FileOf(v.name), the tensor, its dtype and shape, the
  // index of the first bad element, what it is (NaN, +Inf, -Inf) and its bits otherwise.
  // Reads every byte of a floating-point tensor once; free for integer tensors.
  Status CheckFinite(const TensorView& v) const;
};

}  // namespace dsv4::checkpoint
