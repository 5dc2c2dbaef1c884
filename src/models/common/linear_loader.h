// Loads linear-layer weights from a checkpoint as kernel views (kernels/linear_weight.h) for
// both forward passes: zero-copy over the mapped bytes where aligned, with the scales checked.
// The storage format of each linear is either named by the caller (LinearFormat) or read from
// the tensors present among the formats the caller accepts (checkpoint::DetectLinearFormat,
// the one place that decides it; V3.2 loads every linear this way).
//
// Not thread-safe; the TensorSource and the WeightArena must outlive every returned pointer.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "checkpoint/linear_format.h"
#include "checkpoint/tensor.h"
#include "checkpoint/tensor_reader.h"
#include "core/bf16.h"
#include "core/status.h"
#include "kernels/linear_weight.h"

namespace dsv4::models {

// How one linear is stored (checkpoint/linear_format.h).
using checkpoint::LinearFormat;

class LinearLoader {
 public:
  // With options.check_finite (the default) every tensor read, weights and scales, is
  // refused with DataLoss when it holds a NaN or an infinity (checkpoint::TensorReader).
  LinearLoader(const checkpoint::TensorSource& source, checkpoint::WeightArena& arena,
               checkpoint::LoadOptions options = {})
      : src_(source), arena_(arena), reader_(source, arena, options), options_(options) {}

  // Plain tensors (norms, biases, tables): checkpoint::TensorReader's View and F32.
  template <typename T>
  Result<const T*> View(const std::string& name, DType dtype, std::vector<int64_t> shape) {
    return reader_.View<T>(name, dtype, std::move(shape));
  }
  Result<const float*> F32(const std::string& name, DType dtype, std::vector<int64_t> shape) {
    return reader_.F32(name, dtype, std::move(shape));
  }

  // The linear `module` stored in `format`, as the kernels read it: kBf16, kFp8Block (E8M0
  // `scales` or F32 `scales_f32`), kFp4Row32 (MXFP4, I8 or U8 codes) or kNvfp4Row16 (NVFP4;
  // in-features a multiple of 128; weight_scale_2 positive). An MXFP4 linear is repacked once into the
  // FP4 tile layout when the active kernels are the AVX-512 BF16 ones (about 1.4x their GEMV
  // throughput, same size). Errors name the tensor: NotFound when missing, InvalidArgument
  // for a wrong dtype or shape (or kFp8F32 in-features not a multiple of 128), DataLoss for a
  // NaN or infinite weight or scale (with check_finite).
  Result<kernels::LinearWeight> Linear(const std::string& module, LinearFormat format,
                                       int64_t out, int64_t in);
  // The same in whichever of `accepted` the tensors of `module` are stored in
  // (checkpoint::DetectLinearFormat's errors: NotFound, or InvalidArgument naming the tensor,
  // its dtype and the accepted formats).
  Result<kernels::LinearWeight> Linear(const std::string& module,
                                       std::span<const LinearFormat> accepted, int64_t out,
                                       int64_t in);

  // The linear `module` (kBf16, kFp8E8M0 or kFp8F32) used as its BF16 dequantisation, its
  // input not quantised (V4's wo_a, spec §6.5): kBf16 over BF16 storage; kFp8AsBf16 over the
  // FP8 bytes (decoded exactly in registers, half the bytes) when the scales are E8M0, every
  // one makes code × scale a BF16 normal, and `group_rows` (the rows of one output group)
  // starts every group on a 128-row tile; otherwise kBf16 over a dequantised copy.
  Result<kernels::LinearWeight> LinearAsBf16(const std::string& module, LinearFormat format,
                                             int64_t out, int64_t in, int64_t group_rows);

  // The values of the linear `module` (kBf16, kFp8E8M0 or kFp8F32) as BF16 [out, in]: a view
  // of BF16 storage, else bf16(fp8 × scale) in FP32 (the reference's weight_dequant; exact
  // for power-of-two scales). No in-features condition: the result is not an FP8 linear.
  Result<const BF16*> DequantizedBf16(const std::string& module, LinearFormat format,
                                      int64_t out, int64_t in);
  // The same in whichever of `accepted` the tensors of `module` are stored in.
  Result<const BF16*> DequantizedBf16(const std::string& module,
                                      std::span<const LinearFormat> accepted, int64_t out,
                                      int64_t in);

  // A BF16 matrix the reference uses in FP32 (router gate, compressor, head, indexer
  // weights_proj): kF32 over the BF16 bytes (the kernels promote each value exactly), not an
  // FP32 copy of twice the size. `name` is the full tensor name.
  Result<kernels::LinearWeight> PromotedF32(const std::string& name, int64_t out, int64_t in);

  checkpoint::WeightArena& arena() { return arena_; }
  const checkpoint::TensorSource& source() const { return src_; }
  const checkpoint::LoadOptions& options() const { return options_; }

 private:
  // The stored tensors of a kBf16 / kFp8E8M0 / kFp8F32 linear, no further condition.
  Result<kernels::LinearWeight> Stored(const std::string& module, LinearFormat format,
                                       int64_t out, int64_t in);
  // A packed-E2M1 linear (MXFP4 I8 / U8, or NVFP4 as kNvfp4Row16).
  Result<kernels::LinearWeight> Fp4(const std::string& module, LinearFormat format, int64_t out,
                                    int64_t in);
  // bf16(fp8 × scale) of a kFp8Block weight, into the arena.
  const BF16* Dequantize(const kernels::LinearWeight& w);

  const checkpoint::TensorSource& src_;
  checkpoint::WeightArena& arena_;
  checkpoint::TensorReader reader_;
  checkpoint::LoadOptions options_;
};

}  // namespace dsv4::models
