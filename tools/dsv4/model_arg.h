// Resolves a --model argument: a checkpoint folder, or the built-in default model (dsv4-tiny,
// generated in memory) when empty. The tool decides this; the engine and the server are
// handed the model (ModelArgFactory) and never pick one themselves.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "dsv4/engine.h"
#include "checkpoint/checkpoint.h"
#include "checkpoint/load_options.h"

namespace dsv4::cli {

Result<checkpoint::Checkpoint> LoadModelArg(const std::string& dir);

// What an Engine serves for --model `dir` (the same resolution as LoadModelArg), loaded with
// `options`.
ModelFactory ModelArgFactory(const std::string& dir, checkpoint::LoadOptions options = {});

// Adds --no-weight-check to a command that loads a model's weights: it clears
// options->check_finite (which `options` must outlive the command's parsing).
void AddWeightCheckFlag(CLI::App& cmd, checkpoint::LoadOptions* options);

// Prints "error: <status message>" to stderr and returns 1.
int ReportError(const Status& s);

}  // namespace dsv4::cli
