// Byte sizes as users type them: "8GiB", "512MiB", "2TB" (decimal), "1e12", "4096".
#pragma once

#include <cstdint>
#include <string_view>

#include "core/status.h"

namespace dsv4::cli {

// InvalidArgument naming the text for anything else, zero or negative sizes.
Result<int64_t> ParseByteSize(std::string_view text);

}  // namespace dsv4::cli
