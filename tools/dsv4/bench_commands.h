// `dsv4 bench kv`, `dsv4 bench decode`, `dsv4 bench prefix`, `dsv4 bench layer`, `dsv4 bench depth` and `dsv4 bench spec`
// (registered under the `bench` group by RegisterBench in bench_serve.cpp), and what they share: which models to run and how token
// lists are typed.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "checkpoint/config.h"

namespace dsv4::cli {

void RegisterBenchKv(CLI::App& bench, int* exit_code);
void RegisterBenchDecode(CLI::App& bench, int* exit_code);
void RegisterBenchPrefix(CLI::App& bench, int* exit_code);
void RegisterBenchLayer(CLI::App& bench, int* exit_code);
void RegisterBenchDraft(CLI::App& bench, int* exit_code);
void RegisterBenchDepth(CLI::App& bench, int* exit_code);  // bench_depth.cpp
void RegisterBenchSpec(CLI::App& bench, int* exit_code);   // bench_spec.cpp

struct NamedConfig {
  std::string label;  // the preset name or the path as typed
  checkpoint::ModelConfig config;
};

// --models (presets: v3.2, v4-pro, v4-flash, v4-tiny, v3.2-tiny) then --config paths (a
// config.json or a checkpoint folder). Neither given: v3.2, v4-pro, v4-flash. Errors name
// the unknown preset or the unreadable config.
Result<std::vector<NamedConfig>> ResolveBenchModels(const std::vector<std::string>& presets,
                                                    const std::vector<std::string>& configs);

// "8K", "1M", "4096" per item (plan::ParseTokens); InvalidArgument naming `flag` otherwise.
Result<std::vector<int64_t>> ParseTokenCounts(const std::vector<std::string>& items,
                                              std::string_view flag);

// 8192 -> "8K", 1048576 -> "1M", 1000 -> "1000": how the tables label lengths.
std::string TokensLabel(int64_t n);

// The first V3.2 model's index in `models`, or -1: the baseline of the ratio columns.
int BaselineIndex(const std::vector<NamedConfig>& models);

}  // namespace dsv4::cli
