// The JSON files of a checkpoint folder (config.json, model.safetensors.index.json), read
// whole with a size limit and a nesting limit before nlohmann's parser sees them: nlohmann's
// values recurse once per nesting level, so 100,000 `[` in a row would overflow the stack.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace dsv4::checkpoint {

// The parsed contents of `path`, at most `max_bytes` long (ReadFileLimited's errors: NotFound,
// InvalidArgument for a directory or a larger file, IoError) and nested at most
// kDefaultMaxJsonDepth levels. DataLoss naming the path and `what` (e.g. "config file") when
// it nests deeper or is not valid JSON. Thread-safe.
Result<nlohmann::json> ReadJsonFile(const std::filesystem::path& path, uint64_t max_bytes,
                                    std::string_view what);

}  // namespace dsv4::checkpoint
