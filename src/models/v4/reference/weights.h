// Weight loading and the linear layers of the plain reference forward (spec §4.6, §6.5).
//
// The reference keeps every weight as plain FP32 arrays: quantised weights as the unscaled
// values of their codes plus the block scales, so each product is formed exactly as the spec's
// formulas write it. Single-threaded, no SIMD: this is the yardstick the fast path is compared
// with, so it favours being obviously right over being fast.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "checkpoint/config.h"
#include "checkpoint/tensor.h"

namespace dsv4::v4::reference {

// How a linear layer computes y = x · Wᵀ (spec §4.6 and the precision map of §3).
enum class LinearMode {
  // FP8 e4m3 weight with one E8M0 scale per 128x128 tile. The BF16 input is act-quantised to
  // FP8 per 128 (§4.4, power-of-two scales); y_n = Σ_b (Σ_{k∈b} qx_k·qw_nk)·(sx_b·Sw_{n/128,b})
  // with FP32 accumulation in ascending b and k; BF16 output.
  kFp8,
  // Packed E2M1 weight with one E8M0 scale per row per 32 inputs (routed experts). Input
  // act-quantised to FP8 per 128; y_n = Σ_c ((Σ_{k∈c} qx_k·w_nk)·sx_{k/128})·Sw_{n,c}, FP32
  // accumulation, BF16 output.
  kFp4,
  // NVFP4 (spec §11.5): packed E2M1 codes with one FP32 block scale per row per 16 inputs,
  // fp32(e4m3 weight_scale) x weight_scale_2 formed at load. Per 32-chunk and lane l (k mod
  // 8) the two products of each 16-block are summed and scaled by the block's scale, the two
  // added, times sx_{k/128}, accumulated; lanes combine as kFp4 (kernels' canonical order).
  kNvfp4,
  // BF16 weight and BF16 input, FP32 accumulation in ascending k, BF16 output, no activation
  // quantisation (wo_a after its load-time dequantisation, indexer.weights_proj, and every
  // linear of a checkpoint stored with weight_format kBf16).
  kBf16,
  // Weight promoted to FP32, input used as given (FP32), FP32 output that is NOT rounded
  // (compressor wkv/wgate, router gate, head, hc_*_fn).
  kF32,
};

struct Linear {
  LinearMode mode = LinearMode::kF32;
  int64_t out = 0;  // N
  int64_t in = 0;   // K
  // F32 [out, in]. kFp8 / kFp4: the unscaled value of each weight code; otherwise the weight.
  std::vector<float> w;
  // kFp8: F32 [ceil(out/128), ceil(in/128)]; kFp4: F32 [out, in/32] (powers of two from the
  // E8M0 codes); kNvfp4: F32 [out, in/16]; empty for the other modes.
  std::vector<float> scale;
};

// y = x · Wᵀ per the layer's mode. x: [in] (BF16 values, except FP32 values for kF32);
// returns [out] (BF16 values, except FP32 values for kF32). Sizes are DSV4_CHECKed.
std::vector<float> Apply(const Linear& l, std::span<const float> x);

// "layers.<layer>.": the tensor-name prefix of main layer `layer`.
std::string LayerPrefix(int64_t layer);

// Reads a whole tensor as FP32 values (F32 verbatim, BF16 promoted exactly). Errors: NotFound
// from the source, InvalidArgument on a dtype or shape mismatch.
Result<std::vector<float>> LoadFloats(const checkpoint::TensorSource& w, const std::string& name,
                                      DType dtype, std::vector<int64_t> shape);
// Reads an I64 tensor.
Result<std::vector<int64_t>> LoadI64(const checkpoint::TensorSource& w, const std::string& name,
                                     std::vector<int64_t> shape);

// A dense linear `name` (without ".weight") of logical shape [out, in]: kFp8 from
// "<name>.weight" F8_E4M3 + "<name>.scale" F8_E8M0 under WeightFormat::kFp8, kBf16 from a BF16
// "<name>.weight" under kBf16.
Result<Linear> LoadDenseLinear(const checkpoint::ModelConfig& c, const checkpoint::TensorSource& w,
                               const std::string& name, int64_t out, int64_t in);
// A routed-expert linear: kFp4 from I8 [out, in/2] + E8M0 [out, in/32] under kFp8, kBf16
// under kBf16.
Result<Linear> LoadExpertLinear(const checkpoint::ModelConfig& c, const checkpoint::TensorSource& w,
                                const std::string& name, int64_t out, int64_t in);
// wo_a: stored like a dense linear, dequantised once to BF16 (exact, §12.2) and used as a kBf16
// matmul without activation quantisation (§6.5).
Result<Linear> LoadWoA(const checkpoint::ModelConfig& c, const checkpoint::TensorSource& w,
                       const std::string& name, int64_t out, int64_t in);
// A kBf16 linear from a BF16 tensor (full tensor name), e.g. indexer.weights_proj.weight.
Result<Linear> LoadBf16Linear(const checkpoint::TensorSource& w, const std::string& tensor, int64_t out,
                              int64_t in);
// A kF32 linear from a BF16 or F32 tensor (full tensor name).
Result<Linear> LoadF32Linear(const checkpoint::TensorSource& w, const std::string& tensor, DType dtype,
                             int64_t out, int64_t in);

}  // namespace dsv4::v4::reference
