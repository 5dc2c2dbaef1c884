// What the KV cache holds now, by component (public API; src/kv/kv_manager.h fills it).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dsv4 {

struct KvComponentStats {
  std::string name;  // e.g. "csa_entries", "swa_window"
  int64_t page_bytes = 0;
  int64_t pages_in_use = 0;
  int64_t bytes_in_use = 0;
};

struct KvStats {
  int64_t budget_bytes = 0;  // the pages of all sequences together may not exceed it
  int64_t used_bytes = 0;
  std::vector<KvComponentStats> components;
};

}  // namespace dsv4
