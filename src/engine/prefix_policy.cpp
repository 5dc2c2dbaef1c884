#include "engine/prefix_policy.h"

#include <algorithm>
#include <string>

namespace dsv4::engine {

// Snapshots exist only at multiples of this many tokens (kv/v4_cache.h: no compressed window
// is half full there).
constexpr int64_t kSnapshotGranule = 128;

Result<std::unique_ptr<PrefixPolicy>> PrefixPolicy::Create(bool enabled,
                                                           int64_t snapshot_interval) {
  if (enabled && (snapshot_interval <= 0 || snapshot_interval % kSnapshotGranule)) {
    return Status::InvalidArgument("prefix_snapshot_interval must be a positive multiple of 128, "
                                   "got " + std::to_string(snapshot_interval));
  }
  return std::unique_ptr<PrefixPolicy>(new PrefixPolicy(enabled, snapshot_interval));
}

std::vector<int64_t> PrefixPolicy::StopPoints(int64_t num_prompt) const {
  std::vector<int64_t> points;
  if (!enabled_) return points;
  // Leave at least one token to compute: its logits give the first new token.
  const int64_t last = (num_prompt - 1) / kSnapshotGranule * kSnapshotGranule;
  for (int64_t p = interval_; p < last; p += interval_) points.push_back(p);
  if (last >= kSnapshotGranule) points.push_back(last);
  return points;
}

int64_t PrefixPolicy::TryRestore(sched::Sequence* s) {
  if (!enabled_ || s->num_computed != 0) return 0;
  const kv::PrefixSnapshot* snap = cache_.Lookup(s->tokens, s->num_tokens() - 1);
  if (snap == nullptr) return 0;
  // The hit is now the most recently used entry: older entries give way for its copies.
  Status restored = s->state->RestoreSnapshot(*snap);
  while (!restored.ok() && cache_.num_entries() > 1 && cache_.EvictOne()) {
    restored = s->state->RestoreSnapshot(*snap);
  }
  if (!restored.ok()) return 0;
  s->num_computed = snap->num_tokens;
  return snap->num_tokens;
}

void PrefixPolicy::SnapshotAfterStep(const sched::StepPlan& plan) {
  if (!enabled_) return;
  for (const sched::ScheduledChunk& c : plan.chunks) {
    sched::Sequence* s = c.seq;
    const int64_t p = s->num_computed;
    if (std::find(s->stop_points.begin(), s->stop_points.end(), p) == s->stop_points.end()) continue;
    if (cache_.Contains(s->tokens, p)) continue;
    std::unique_ptr<kv::PrefixSnapshot> snap = s->state->TakeSnapshot();
    if (snap) cache_.Insert(s->tokens, std::move(snap));
  }
}

}  // namespace dsv4::engine
