// The engine's prefix-caching policy over kv::PrefixCache: where a prompt is snapshotted
// (its stop points: every multiple of the interval and its last multiple of 128, leaving at
// least one token to compute), restoring the longest cached prefix when a sequence is
// admitted, and snapshotting sequences that a step brought to a stop point. Cached entries
// give way (EvictOne) when the KV budget needs pages.
// Not thread-safe: the engine thread owns it. Must be destroyed after every sequence that
// restored from it and before the KV manager its snapshots hold pages of.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/status.h"
#include "kv/prefix_cache.h"
#include "sched/scheduler.h"
#include "sched/sequence.h"

namespace dsv4::engine {

class PrefixPolicy {
 public:
  // `enabled` false: no stop points, no lookups, no snapshots. InvalidArgument when enabled
  // with an interval that is not a positive multiple of 128.
  static Result<std::unique_ptr<PrefixPolicy>> Create(bool enabled, int64_t snapshot_interval);

  bool enabled() const { return enabled_; }

  // Positions where a prompt of `num_prompt` tokens is snapshotted, ascending (the
  // scheduler ends chunks there).
  std::vector<int64_t> StopPoints(int64_t num_prompt) const;

  // For a sequence with nothing computed: continues it from the longest cached prefix of its
  // tokens (leaving at least one to compute) and returns the tokens restored; 0 when there
  // is none or its pages cannot be had even after evicting the other entries.
  int64_t TryRestore(sched::Sequence* s);

  // After a step ran (and was committed): snapshots every sequence of `plan` that just
  // reached one of its stop points, unless that prefix is cached already.
  void SnapshotAfterStep(const sched::StepPlan& plan);

  // Drops the least recently used entry; false when there is none.
  bool EvictOne() { return cache_.EvictOne(); }
  void Clear() { cache_.Clear(); }
  int64_t num_entries() const { return cache_.num_entries(); }

 private:
  PrefixPolicy(bool enabled, int64_t interval) : enabled_(enabled), interval_(interval) {}

  bool enabled_;
  int64_t interval_;
  kv::PrefixCache cache_;
};

}  // namespace dsv4::engine
