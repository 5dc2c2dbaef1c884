// Resolves a --model argument: a checkpoint folder, or the built-in default model when empty.
#pragma once

#include <string>

#include "checkpoint/checkpoint.h"

namespace dsv4::cli {

Result<checkpoint::Checkpoint> LoadModelArg(const std::string& dir);

// Prints "error: <status message>" to stderr and returns 1.
int ReportError(const Status& s);

}  // namespace dsv4::cli
