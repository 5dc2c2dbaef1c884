// Reading a whole file into memory with a size limit. Every file the program reads whole
// (config.json, the safetensors index, tokenizer.json, token-id lists given on the command line)
// goes through ReadFileLimited, so an oversized or endless file (a wrong path, /dev/zero, a
// FIFO) gives a clear error instead of exhausting memory.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "core/status.h"

namespace dsv4 {

// Size limits of the JSON files of a checkpoint folder, far above real ones: DeepSeek's
// config.json is ~2 KB, tokenizer.json ~8 MB, model.safetensors.index.json ~4 MB for V4-Pro.
// config.json and hf_quant_config.json share one limit: ModelOpt's `quantized_layers` map may
// name every expert matrix (V4-Pro: ~47K modules, ~3 MB).
inline constexpr uint64_t kMaxConfigJsonBytes = 16ull << 20;     // 16 MiB
inline constexpr uint64_t kMaxTokenizerJsonBytes = 64ull << 20;  // 64 MiB
inline constexpr uint64_t kMaxIndexJsonBytes = 100'000'000;

// The contents of `path` (binary, as stored). `what` says what the file is for messages
// ("config file", "token file"). Errors name the path: NotFound when it does not exist,
// InvalidArgument when it is a directory or holds more than `max_bytes` bytes (the message
// gives its size, or "more than" the limit when it is not a regular file, and the limit),
// IoError when it cannot be opened or read. Reads at most max_bytes + 1 bytes whatever the
// file is, so a size that changes after the check cannot exceed the limit either.
// Thread-safe.
Result<std::string> ReadFileLimited(const std::filesystem::path& path, uint64_t max_bytes,
                                    std::string_view what);

}  // namespace dsv4
