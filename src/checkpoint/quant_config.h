// The quantisation a checkpoint declares (spec §11.5, §12, §14.1b): config.json's
// `quantization_config` (DeepSeek's block-scaled FP8; NVIDIA ModelOpt's keys for NVFP4
// checkpoints) and, when present, hf_quant_config.json's "quantization" object. Informative:
// the tensors decide each linear's format (linear_format.h); the inventory check
// (checkpoint.h) refuses only a declaration the tensors contradict (DeclaredFor).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/status.h"

namespace dsv4::checkpoint {

// How the dense linears and the routed experts are stored in the checkpoint.
enum class WeightFormat {
  kFp8,   // dense: F8_E4M3 + 128x128 block scales; V4 experts packed FP4 + E8M0 per 32
  kBf16,  // every quantised tensor stored as its exact BF16 dequantisation, no scales
};

// NVIDIA ModelOpt keys of `quantization_config` (NVFP4 checkpoints, spec §11.5), and of
// hf_quant_config.json's "quantization" object when present.
struct ModelOptQuant {
  std::string quant_algo;              // "MIXED_PRECISION", "NVFP4", "FP8" or ""
  std::string moe_quant_algo;          // "NVFP4" or "" (absent)
  int64_t group_size = 0;              // 16 for NVFP4; 0 if absent
  std::string producer;                // e.g. "modelopt" (the name, when an object)
  std::vector<std::string> ignore;     // module patterns ModelOpt left in their original
                                       // format (fnmatch: `*` also matches dots)
  // `quantized_layers`: module name (as in the checkpoint, without ".weight") -> its
  // quant_algo ("NVFP4" or "FP8").
  std::map<std::string, std::string> quantized_layers;

  // Whether the routed experts are declared NVFP4.
  bool nvfp4_experts() const { return moe_quant_algo == "NVFP4" || quant_algo == "NVFP4"; }
};

// Parses config.json's `quantization_config` (absent or null: BF16) into *format and *m.
// quant_method "fp8" or "modelopt"; fmt "e4m3"; weight_block_size [128, 128]; quant_algo and
// moe_quant_algo among NVFP4, MIXED_PRECISION, FP8; group_size 16 whenever NVFP4 is named;
// `producer` a string or an object with a name; `ignore` a list of strings;
// `quantized_layers` an object of objects with a string quant_algo among those. Errors name
// `label`, the field, what was expected and what was found.
Status ParseQuantizationConfig(const nlohmann::json& config, std::string_view label,
                               WeightFormat* format, ModelOptQuant* m);

// Merges `file` (hf_quant_config.json: {"quantization": {quant_algo, group_size, producer,
// exclude_modules, quantized_layers}}) into *m: config.json's keys win where both are given;
// InvalidArgument when the two disagree on whether the routed experts are NVFP4, or on a
// module's algorithm. Errors name the file.
Status MergeHfQuantConfig(const std::filesystem::path& file, ModelOptQuant* m);

// What the declarations say of linear `module`'s storage, for the inventory check.
struct DeclaredQuant {
  bool nvfp4 = false;  // stored NVFP4 (else: not NVFP4, left in its original format)
  std::string by;      // the declaring key, for messages ("quantized_layers['M'] NVFP4",
                       // "ignore pattern '*.attn.*'", "moe_quant_algo NVFP4"); "" if none
};
// `routed_expert`: a main-layer routed expert, declared NVFP4 by moe_quant_algo (the draft
// blocks' experts are not, spec §11.5). quantized_layers wins over ignore, which wins over
// moe_quant_algo.
DeclaredQuant DeclaredFor(const ModelOptQuant& m, const std::string& module, bool routed_expert);

nlohmann::json ModelOptToJson(const ModelOptQuant& m);  // the keys ParseQuantizationConfig reads

}  // namespace dsv4::checkpoint
