// --speculative / --draft-tokens: speculative decoding (EngineOptions speculative,
// draft_tokens), the same flags on every command that configures an engine for generation
// (serve, run, bench serve); and how a command reports what it did.
#pragma once

#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>

#include "dsv4/engine.h"

namespace dsv4::cli {

struct SpeculativeFlags {
  std::string mode = "auto";  // auto | mtp | dspark | off
  int64_t draft_tokens = 0;   // 0: the drafter's maximum
};

void AddSpeculativeFlags(CLI::App& cmd, SpeculativeFlags* flags);
void ApplySpeculativeFlags(const SpeculativeFlags& flags, EngineOptions* options);

// "speculative: mtp, 1 draft token" or "speculative: off (...)", and, once drafts were
// verified, their acceptance: rate, mean accepted length, per draft position.
std::string SpeculativeReport(const Engine& engine, const EngineStats& stats);

}  // namespace dsv4::cli
