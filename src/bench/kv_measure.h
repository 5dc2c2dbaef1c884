// `dsv4 bench kv`: the KV bytes of one sequence, measured from the engine's real caches. A
// layer subset (layer_subset.h) of the model gets a real cache (V4SequenceCache on a backed
// KvManager; V32SequenceCache on its own backed KvManager), which is filled to each length with synthetic entries
// (synthetic_kv.h); what the cache then holds is read back through its own accessors, by
// component, and scaled per layer type to the full stack.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bench/layer_subset.h"
#include "core/status.h"
#include "checkpoint/config.h"

namespace dsv4::bench {

struct KvMeasureOptions {
  std::vector<int64_t> lengths;  // tokens per sequence, each >= 1 (any order)
  int64_t num_layers = 0;        // layers allocated for real; 0: one per layer type
  uint64_t seed = 1;
  // Refuse (ResourceExhausted, before allocating) when the subset's cache would need more
  // than this many bytes at the longest length; 0: no limit.
  int64_t max_bytes = 0;
};

// One component of the full stack at one length (names as in kv::ComputeKvFootprint).
struct MeasuredComponent {
  std::string name;
  bool fixed = false;  // window ring or compressor state: does not grow with the context
  int64_t layers = 0;  // layers of the full stack that hold it
  int64_t entry_bytes = 0;
  int64_t entries = 0;      // per layer, as the cache counts them
  int64_t exact_bytes = 0;  // bytes held by those entries, full stack
  int64_t pages = 0;        // pages the cache holds, full stack
  int64_t page_bytes = 0;   // bytes of those pages, full stack (>= exact_bytes)
};

struct KvPoint {
  int64_t num_tokens = 0;
  std::vector<MeasuredComponent> components;
  // What the subset's cache reported, before scaling: the sum of its Usage() and, for V4, the
  // bytes its KvManager has charged (the two agree; both are printed as a cross-check).
  int64_t subset_usage_bytes = 0;
  int64_t subset_manager_bytes = 0;  // what the cache's KvManager charged
  double fill_seconds = 0;           // time to grow the cache to this length

  int64_t exact_bytes() const;
  int64_t page_bytes() const;
  int64_t growing_bytes() const;  // exact bytes of the components that grow
  int64_t window_bytes() const;   // exact bytes of the V4 window rings
  int64_t state_bytes() const;    // exact bytes of the V4 compressor states
};

struct KvReport {
  std::string label;          // preset name or config path
  checkpoint::ModelConfig config;  // the full model
  LayerSubset subset;
  bool paged = false;           // pages of 64 entries (both caches now)
  std::vector<KvPoint> points;  // in the order of KvMeasureOptions::lengths
};

// ResourceExhausted if the machine cannot back the pages (the manager's budget is unbounded).
Result<KvReport> MeasureKv(const checkpoint::ModelConfig& c, std::string label,
                           const KvMeasureOptions& o);

}  // namespace dsv4::bench
