// Built-in model configurations: the real DeepSeek-V4-Flash (April and 0731), V4-Pro and V3.2
// architectures (spec §1, §11.4, §14.1; used by planners and benchmarks without a checkpoint)
// and the tiny configurations the generator and the tests use.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "checkpoint/config.h"

namespace dsv4::checkpoint {

// Name of the built-in default model (the in-memory tiny V4).
inline constexpr std::string_view kDefaultModelName = "dsv4-tiny";

// Names accepted by PresetConfig: "v4-flash", "v4-flash-0731", "v4-pro", "v3.2", "v4-tiny",
// "v3.2-tiny".
std::vector<std::string> PresetNames();
// NotFound listing the valid names for an unknown one.
Result<ModelConfig> PresetConfig(std::string_view name);

// Tiny but complete configurations (every layer type, hash and non-hash MoE, mHC).
ModelConfig TinyV4Config();
ModelConfig TinyV32Config();

// `c` (V4) with the drafter of one release layout and the same main model:
//   kMtp    April: num_nextn_predict_layers 1, compress_ratios L + 1 entries (last 0);
//   kDspark 0731 / 0813: the DSpark blocks `c` already declares, else three blocks fed from the
//           last three main layers (V4-Flash-0731: [40, 41, 42]), block size 5, Markov rank
//           256, noise token 128799 (the last id when the vocabulary is smaller);
//           num_nextn_predict_layers 1 as those configs say, one 0 per block in compress_ratios;
//   kNone   no drafter: num_nextn_predict_layers 0, compress_ratios L + 1 entries.
ModelConfig WithDrafter(ModelConfig c, DraftFamily family);

}  // namespace dsv4::checkpoint
