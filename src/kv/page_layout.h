// Pages of the KV cache: which components a model's cache has, how many bytes one entry of
// each takes (from layout.h, the single source of byte formulas), how many entries share a
// page, and how many pages a sequence of n tokens needs. The paged cache allocates exactly
// what PagesAt() says; the planner and `bench serve` use the same numbers.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "kv/layout.h"
#include "checkpoint/config.h"

namespace dsv4::kv {

enum class Component : uint8_t {
  kSwaWindow,       // V4: ring of sliding_window entries per layer
  kCsaEntries,      // V4: compressed entries of CSA layers (one per 4 tokens)
  kCsaIndexerKeys,  // V4: indexer keys of CSA layers (one per 4 tokens)
  kHcaEntries,      // V4: compressed entries of HCA layers (one per 128 tokens)
  kCsaState,        // V4: FP32 compressor state of a CSA layer (main + indexer)
  kHcaState,        // V4: FP32 compressor state of an HCA layer
  kMlaLatent,       // V3.2: 656-B MLA record per token
  kMlaIndexerKeys,  // V3.2: 132-B indexer key per token
};
inline constexpr int kNumComponents = 8;
std::string_view ComponentName(Component c);

struct ComponentLayout {
  Component component;
  int64_t layers = 0;            // layers that hold this component
  int64_t entry_bytes = 0;       // bytes of one entry
  int64_t entries_per_page = 0;
  bool fixed = false;            // does not grow with the context
  int64_t page_bytes() const { return entry_bytes * entries_per_page; }
};

class PageLayout {
 public:
  // `entries_per_page` for the growing components (64 by default: 256 tokens of CSA, 8192 of
  // HCA per page); window pages hold the largest divisor of sliding_window <= 16 entries so
  // the ring fills page by page; compressor state is one page per layer.
  PageLayout(const checkpoint::ModelConfig& c, const KvFormats& f, int64_t entries_per_page = 64);

  const std::vector<ComponentLayout>& components() const { return components_; }
  const ComponentLayout* Find(Component c) const;

  // Entries one layer of component `c` holds after n tokens (spec §13.1 counts).
  int64_t EntriesAt(Component c, int64_t n) const;
  // Pages one layer of component `c` needs after n tokens.
  int64_t PagesAt(Component c, int64_t n) const;
  // Bytes of all pages of a sequence of n tokens (all components and layers).
  int64_t BytesAt(int64_t n) const;
  // Extra bytes to grow a sequence from n0 to n1 tokens.
  int64_t GrowthBytes(int64_t n0, int64_t n1) const { return BytesAt(n1) - BytesAt(n0); }

 private:
  int64_t window_ = 0;
  std::vector<ComponentLayout> components_;
};

// The footprint of a sequence holding pages[c] pages of each component c (summed over its
// layers), as the paged caches report it (Usage()): one entry per component with pages, in
// layout order.
KvFootprint PagedFootprint(const PageLayout& layout, int64_t num_tokens,
                           const std::array<int64_t, kNumComponents>& pages);

}  // namespace dsv4::kv
