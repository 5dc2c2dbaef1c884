// Per-tensor storage formats of linear layers (spec §4.6, §12, §14.1b): how one linear
// W [out, in] may be stored, which tensors each format consists of, and the single place that
// decides which format a checkpoint used for a given linear, from the tensors present.
// Releases and derived checkpoints mix formats per tensor (a BF16 MTP `eh_proj` or indexer
// `wk` in an FP8 V3.2 checkpoint), so the inventory check (checkpoint.h), the fast loaders
// (models/common/linear_loader.h) and the references all ask DetectLinearFormat instead of
// assuming one format per model.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "checkpoint/tensor.h"

namespace dsv4::checkpoint {

// How one linear W [out, in] is stored; `<m>` is the module name without ".weight".
enum class LinearFormat {
  kBf16,     // <m>.weight BF16 [out, in]
  kFp8E8M0,  // DeepSeek-V4: <m>.weight F8_E4M3 [out, in] and
             // <m>.scale F8_E8M0 [ceil(out/128), ceil(in/128)] (0xFF, NaN, is refused)
  kFp8F32,   // DeepSeek-V3.2: <m>.weight F8_E4M3 [out, in] and
             // <m>.weight_scale_inv F32 [ceil(out/128), ceil(in/128)] (finite); as a kernel
             // linear, in % 128 == 0 (the FP8 activation blocks)
  kFp4E8M0,  // DeepSeek-V4 routed experts (MXFP4): <m>.weight I8 [out, in/2] (packed E2M1, low
             // nibble the even column) and <m>.scale F8_E8M0 [out, in/32]
  kFp4U8E8M0,  // the same with U8 codes (re-exported checkpoints store the packed bytes as U8)
  kNvfp4,    // NVIDIA NVFP4 routed experts (spec §11.5): <m>.weight U8 [out, in/2] (packed E2M1
             // as above), <m>.weight_scale F8_E4M3 [out, in/16] (finite), <m>.weight_scale_2
             // F32 [] (per-matrix global scale) and optionally <m>.input_scale F32 [] (a static
             // activation scale for W4A4 GPU kernels; read by nobody here). Dequantised weight:
             // e2m1(code) x fp32(weight_scale) x weight_scale_2.
};

// Whether `f` stores packed E2M1 codes (the routed-expert formats).
bool IsFp4Format(LinearFormat f);

// For messages: "BF16", "F8_E4M3 + F8_E8M0 'scale'", "F8_E4M3 + F32 'weight_scale_inv'",
// "I8 (packed FP4) + F8_E8M0 'scale'", "U8 (packed FP4) + F8_E8M0 'scale'",
// "U8 (packed FP4) + F8_E4M3 'weight_scale' + F32 'weight_scale_2' (NVFP4)".
std::string LinearFormatName(LinearFormat f);

// One stored tensor of a linear.
struct LinearTensor {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  bool optional = false;  // may be absent (NVFP4 input_scale)
};

// The tensors `format` stores the linear `module` [out, in] as: the weight first, then its
// scale(s) (if any), then optional tensors. Shapes of the FP4 formats are floor divisions: the
// caller refuses in-features that are not a multiple of the format's block (FP4 block in
// features).
std::vector<LinearTensor> LinearTensors(const std::string& module, LinearFormat format,
                                        int64_t out, int64_t in);

// Which of `accepted` (non-empty, in order of preference) the linear `module` is stored in:
// the formats whose weight has the dtype of <module>.weight, and of those, when several (FP8
// with an E8M0 `scale` or an F32 `weight_scale_inv`; U8 codes with an E8M0 `scale` (MXFP4) or
// an E4M3 `weight_scale` (NVFP4)), the first whose scale tensor is present.
// Shapes are not checked here (LinearTensors gives them to the caller, who checks them).
// Errors name the source and the tensor: NotFound when <module>.weight is absent, or when an
// F8_E4M3 weight has none of the accepted scale tensors beside it while more than one could
// fit (a single candidate is returned as is: the caller's check then reports its missing
// scale); InvalidArgument when the dtype fits no accepted format, naming the dtype found and
// the formats accepted.
Result<LinearFormat> DetectLinearFormat(const TensorSource& source, const std::string& module,
                                        std::span<const LinearFormat> accepted);

}  // namespace dsv4::checkpoint
