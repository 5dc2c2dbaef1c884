// Resolves a --model argument: a checkpoint folder, or the built-in default model (dsv4-tiny,
// generated in memory) when empty. The tool decides this; the engine and the server are
// handed the model (ModelArgFactory) and never pick one themselves.
#pragma once

#include <string>

#include "dsv4/engine.h"
#include "checkpoint/checkpoint.h"

namespace dsv4::cli {

Result<checkpoint::Checkpoint> LoadModelArg(const std::string& dir);

// What an Engine serves for --model `dir` (the same resolution as LoadModelArg).
ModelFactory ModelArgFactory(const std::string& dir);

// Prints "error: <status message>" to stderr and returns 1.
int ReportError(const Status& s);

}  // namespace dsv4::cli
