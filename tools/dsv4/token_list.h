// Token id lists given on the command line or in a file: ids separated by commas and/or
// whitespace ("1, 2 3\n4").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace dsv4::cli {

// InvalidArgument naming `what` and the offending item (non-numeric, negative, too large).
Result<std::vector<int32_t>> ParseTokenList(const std::string& text, const std::string& what);
Result<std::vector<int32_t>> ReadTokenFile(const std::string& path);

}  // namespace dsv4::cli
