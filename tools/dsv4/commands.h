// The dsv4 subcommands. Each Register* adds one subcommand to the app; its callback sets
// *exit_code (0 on success, 1 on a user-facing error already printed to stderr).
#pragma once

#include <CLI/CLI.hpp>

namespace dsv4::cli {

void RegisterMakeTiny(CLI::App& app, int* exit_code);
void RegisterInspect(CLI::App& app, int* exit_code);
void RegisterPlan(CLI::App& app, int* exit_code);
void RegisterLogits(CLI::App& app, int* exit_code);
void RegisterRun(CLI::App& app, int* exit_code);
void RegisterBench(CLI::App& app, int* exit_code);
void RegisterServe(CLI::App& app, int* exit_code);
void RegisterTokenize(CLI::App& app, int* exit_code);  // tokenize and detokenize

}  // namespace dsv4::cli
