// Built-in model configurations: the real DeepSeek-V4-Flash, V4-Pro and V3.2 architectures
// (spec §1, §14.1; used by planners and benchmarks without a checkpoint) and the tiny
// configurations the generator and the tests use.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "checkpoint/config.h"

namespace dsv4::checkpoint {

// Name of the built-in default model (the in-memory tiny V4).
inline constexpr std::string_view kDefaultModelName = "dsv4-tiny";

// Names accepted by PresetConfig: "v4-flash", "v4-pro", "v3.2", "v4-tiny", "v3.2-tiny".
std::vector<std::string> PresetNames();
// NotFound listing the valid names for an unknown one.
Result<ModelConfig> PresetConfig(std::string_view name);

// Tiny but complete configurations (every layer type, hash and non-hash MoE, mHC).
ModelConfig TinyV4Config();
ModelConfig TinyV32Config();

}  // namespace dsv4::checkpoint
