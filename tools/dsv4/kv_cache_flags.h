// --kv-cache-dir / --kv-cache-disk-budget: the prefix cache's disk tier (EngineOptions
// kv_cache_dir, kv_cache_disk_budget_bytes), the same flags on every command that configures
// an engine (serve, run, bench serve, bench prefix).
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "dsv4/engine.h"

namespace dsv4::cli {

struct KvCacheDiskFlags {
  std::string dir;  // empty: no disk tier
  std::string budget = "8GiB";
};

void AddKvCacheDiskFlags(CLI::App& cmd, KvCacheDiskFlags* flags);
// Sets the engine's disk-tier options; InvalidArgument naming a bad --kv-cache-disk-budget.
Status ApplyKvCacheDiskFlags(const KvCacheDiskFlags& flags, EngineOptions* options);

}  // namespace dsv4::cli
