// The engine's prefix-caching policy over kv::PrefixCache (RAM) and kv::DiskTier (files):
// where a prompt is snapshotted (its stop points: every multiple of the interval and its last
// multiple of 128, leaving at least one token to compute), where a finished turn is (the last
// multiple of 128 its prompt + output passed with their KV computed: the sampled token that
// ends a request has none), restoring the longest cached prefix from either tier when a
// sequence is admitted, and snapshotting sequences that a step brought to such a point.
//
// Tiers: one least-recently-used order across RAM and disk. RAM entries give way (EvictOne)
// when the KV budget needs pages; with a disk tier the evicted entry is written to a file
// first (unless that prefix has one), and files beyond the disk budget are deleted, oldest
// first. A disk hit is restored into the sequence's own pages and kept in RAM again as the
// most recently used entry (its file stays). At shutdown (SpillAll) RAM entries are written
// out, so a restarted engine finds them.
//
// Not thread-safe: the engine thread owns it. Must be destroyed after every sequence that
// restored from it and before the KV manager its snapshots hold pages of.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "dsv4/engine.h"
#include "kv/disk_tier.h"
#include "kv/prefix_cache.h"
#include "sched/scheduler.h"
#include "sched/sequence.h"

namespace dsv4::engine {

struct PrefixPolicyOptions {
  bool enabled = false;  // false: no stop points, no lookups, no snapshots
  int64_t snapshot_interval = 4096;
  bool snapshot_prompt_end = true;  // also at the prompt's last multiple of 128
  std::string disk_dir;  // empty: RAM only
  int64_t disk_budget_bytes = 0;
  uint64_t model_fingerprint = 0;  // names the model in every file (runner/model_fingerprint.h)
  std::function<void(const std::string&)> warn;  // default: "warning: ..." on stderr
};

class PrefixPolicy {
 public:
  // InvalidArgument when enabled with an interval that is not a positive multiple of 128, or
  // a disk folder with a budget < 0. A disk folder that cannot be used is not an error: the
  // tier warns once and is off.
  static Result<std::unique_ptr<PrefixPolicy>> Create(PrefixPolicyOptions options);

  bool enabled() const { return options_.enabled; }

  // Positions where a prompt of `num_prompt` tokens is snapshotted, ascending (the
  // scheduler ends chunks there).
  std::vector<int64_t> StopPoints(int64_t num_prompt) const;

  // For a sequence with nothing computed: continues it from the longest cached prefix of its
  // tokens in either tier (leaving at least one to compute) and returns the tokens restored;
  // 0 when there is none or its pages cannot be had even after evicting the other entries.
  // *draft (when given) receives the entry's draft bytes (PrefixSnapshot::draft; empty when
  // it has none).
  int64_t TryRestore(sched::Sequence* s, std::vector<uint8_t>* draft = nullptr);

  // The most positions one step may compute for `s` (a speculative step verifying drafts)
  // without passing a multiple of 128, where SnapshotAfterStep looks for snapshot points: so
  // it sees the same points as one-token steps. Unlimited when caching is off.
  int64_t MaxStepAdvance(const sched::Sequence& s) const;

  // After a step ran (and was committed): snapshots every sequence of `plan` that just
  // reached one of its stop points, unless that prefix is cached already; a sequence past
  // its prompt at a multiple of 128 gets a pending turn snapshot (replacing its previous one).
  // `draft_of` (optional) gives the draft bytes kept with a snapshot taken of a chunk's
  // sequence (the engine: its drafter's state there).
  using DraftFn = std::function<std::vector<uint8_t>(const sched::ScheduledChunk&)>;
  void SnapshotAfterStep(const sched::StepPlan& plan, const DraftFn& draft_of = {});
  // A request ended: its pending turn snapshot (if any) becomes a cache entry, or is dropped
  // when `keep` is false (a failed step).
  void OnFinish(const sched::Sequence& s, bool keep);

  // Frees RAM: evicts the least recently used entry (spilling it to disk), else drops a
  // pending turn snapshot; false when there is nothing left to free.
  bool EvictOne();
  // Drops every entry of both tiers (files deleted) and every pending snapshot.
  void Clear();
  // Writes every RAM entry without a file to disk, least recently used first (shutdown).
  void SpillAll();

  int64_t num_entries() const { return cache_.num_entries(); }
  // Fills the prefix_ram_* and prefix_disk_* fields of `stats` (prefix_ram_draft_bytes too).
  void FillStats(EngineStats* stats) const;

 private:
  explicit PrefixPolicy(PrefixPolicyOptions options);
  int64_t RestoreFromDisk(sched::Sequence* s, int64_t n, std::vector<uint8_t>* draft);
  void Spill(std::span<const int32_t> tokens, const kv::PrefixSnapshot& snap);
  void Warn(const std::string& m) const { options_.warn(m); }

  PrefixPolicyOptions options_;
  kv::PrefixCache cache_;
  std::unique_ptr<kv::DiskTier> disk_;  // null without a folder
  std::map<sched::SeqId, std::unique_ptr<kv::PrefixSnapshot>> pending_;  // turn snapshots
  int64_t ram_hits_ = 0, ram_hit_tokens_ = 0;
  int64_t disk_hits_ = 0, disk_hit_tokens_ = 0;
  double ram_restore_seconds_ = 0, disk_restore_seconds_ = 0;
  int64_t turn_snapshots_ = 0;
};

}  // namespace dsv4::engine
