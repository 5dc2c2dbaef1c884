#include "kv_cache_flags.h"

#include "byte_size.h"

namespace dsv4::cli {

void AddKvCacheDiskFlags(CLI::App& cmd, KvCacheDiskFlags* flags) {
  cmd.add_option("--kv-cache-dir", flags->dir,
                 "Folder for prefix snapshots evicted from RAM (kept across restarts)");
  cmd.add_option("--kv-cache-disk-budget", flags->budget,
                 "Bytes of snapshot files kept in --kv-cache-dir (least recently used go first)")
      ->capture_default_str();
}

Status ApplyKvCacheDiskFlags(const KvCacheDiskFlags& flags, EngineOptions* options) {
  options->kv_cache_dir = flags.dir;
  Result<int64_t> budget = ParseByteSize(flags.budget);
  if (!budget.ok()) {
    return Status::InvalidArgument("--kv-cache-disk-budget: " + budget.status().message());
  }
  options->kv_cache_disk_budget_bytes = *budget;
  return Status::Ok();
}

}  // namespace dsv4::cli
