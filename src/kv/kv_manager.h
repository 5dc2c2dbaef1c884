// Owns the KV pages of every sequence of one model: a BlockPool per component of the model's
// PageLayout, all charging one byte budget. Exposes exact per-component accounting.
// Not thread-safe: the engine thread owns it.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dsv4/kv_stats.h"
#include "kv/block_pool.h"
#include "kv/page_layout.h"

namespace dsv4::kv {

// Public (include/dsv4/kv_stats.h): the engine reports them.
using ComponentStats = ::dsv4::KvComponentStats;
using KvStats = ::dsv4::KvStats;

class KvManager {
 public:
  // `backing` false: pages are accounted but hold no memory (admission studies).
  KvManager(PageLayout layout, int64_t budget_bytes, bool backing = true);

  const PageLayout& layout() const { return layout_; }
  BlockPool& pool(Component c);
  const BlockPool& pool(Component c) const;
  bool backing() const { return backing_; }

  int64_t budget_bytes() const { return budget_.capacity(); }
  int64_t available_bytes() const { return budget_.available(); }
  KvStats Stats() const;
  // The same into *s, reusing its vector's and names' capacity: once filled, allocates
  // nothing (the engine refreshes its stats every step).
  void FillStats(KvStats* s) const;

 private:
  PageLayout layout_;
  KvBudget budget_;
  bool backing_;
  std::array<std::unique_ptr<BlockPool>, kNumComponents> pools_;
};

}  // namespace dsv4::kv
