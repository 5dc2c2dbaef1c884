// Writes NumPy .npy files (format 1.0, little-endian float32, C order) atomically: a temp
// file beside the target, renamed into place, so a failure never leaves a partial file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace dsv4::cli {

Status WriteNpyF32(const std::string& path, const std::vector<int64_t>& shape, const float* data);

}  // namespace dsv4::cli
