// Token id lists given on the command line or in a file: ids separated by commas and/or
// whitespace ("1, 2 3\n4").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace dsv4::cli {

// Limits far above any model's context (1M tokens for DeepSeek-V4; an id takes at most 11
// bytes with its separator), so that a wrong file fails at once instead of exhausting memory.
inline constexpr uint64_t kMaxTokenFileBytes = 64ull << 20;   // 64 MiB
inline constexpr int64_t kMaxTokenListTokens = int64_t{1} << 24;  // 16,777,216 ids

// InvalidArgument naming `what` and the offending item (non-numeric, negative, too large), or
// the count when the list holds more than kMaxTokenListTokens ids.
Result<std::vector<int32_t>> ParseTokenList(const std::string& text, const std::string& what);
// The ids of the file at `path`: ReadFileLimited's errors (NotFound, IoError, InvalidArgument
// past kMaxTokenFileBytes, naming the path, its size and the limit), then ParseTokenList's.
Result<std::vector<int32_t>> ReadTokenFile(const std::string& path);

}  // namespace dsv4::cli
