// Typed access to checkpoint tensors for model loaders: zero-copy where the mapping is
// aligned, an owned aligned copy otherwise, and FP32 promotions of BF16 tensors. The arena owns
// every copy; views point into the TensorSource, which must outlive them. Every tensor a model
// reads comes through View, which checks its values once (LoadOptions::check_finite).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/bf16.h"
#include "core/large_buffer.h"
#include "core/status.h"
#include "checkpoint/load_options.h"
#include "checkpoint/tensor.h"

namespace dsv4::checkpoint {

// Owns the buffers weight views need (aligned copies, promotions, dequantisations, the FP4
// tile repacks): zero-filled LargeBuffers, so those of 2 MiB and more sit in huge pages.
class WeightArena {
 public:
  template <typename T>
  T* Alloc(size_t n) {
    static_assert(alignof(T) <= 64, "LargeBuffer aligns to 64 bytes at least");
    buffers_.emplace_back(n * sizeof(T));
    return reinterpret_cast<T*>(buffers_.back().data());
  }

 private:
  std::vector<LargeBuffer> buffers_;
};

class TensorReader {
 public:
  TensorReader(const TensorSource& source, WeightArena& arena, LoadOptions options = {})
      : src_(source), arena_(arena), options_(options) {}

  const TensorSource& source() const { return src_; }
  WeightArena& arena() { return arena_; }

  // A typed pointer to the tensor's data (checked dtype and shape, and with check_finite no
  // NaN or infinite value: DataLoss from TensorSource::CheckFinite): the mapping itself when
  // aligned for T, else an aligned copy.
  template <typename T>
  Result<const T*> View(const std::string& name, DType dtype, std::vector<int64_t> shape) {
    DSV4_ASSIGN_OR_RETURN(TensorView v, src_.Get(name, dtype, shape));
    if (options_.check_finite) DSV4_RETURN_IF_ERROR(src_.CheckFinite(v));
    const auto addr = reinterpret_cast<uintptr_t>(v.bytes.data());
    if (addr % alignof(T) == 0) return reinterpret_cast<const T*>(v.bytes.data());
    T* copy = arena_.Alloc<T>(v.bytes.size() / sizeof(T));
    std::memcpy(copy, v.bytes.data(), v.bytes.size());
    return static_cast<const T*>(copy);
  }

  // FP32 values of an F32 tensor (a view) or of a BF16 one (a promoted copy), as the
  // reference promotes norms, router and compressor weights at use (spec §3).
  Result<const float*> F32(const std::string& name, DType dtype, std::vector<int64_t> shape) {
    const int64_t n = NumElements(shape);
    if (dtype == DType::kF32) return View<float>(name, dtype, std::move(shape));
    DSV4_ASSIGN_OR_RETURN(const BF16* b, View<BF16>(name, DType::kBF16, std::move(shape)));
    float* out = arena_.Alloc<float>(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) out[i] = Bf16ToF32(b[i]);
    return static_cast<const float*>(out);
  }

 private:
  const TensorSource& src_;
  WeightArena& arena_;
  LoadOptions options_;
};

}  // namespace dsv4::checkpoint
