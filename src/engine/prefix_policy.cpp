#include "engine/prefix_policy.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <limits>
#include <string>

#include "core/elapsed.h"

namespace dsv4::engine {
namespace {

// Snapshots exist only at multiples of this many tokens (kv/v4_cache.h: no compressed window
// is half full there).
constexpr int64_t kSnapshotGranule = 128;

using Clock = std::chrono::steady_clock;

}  // namespace

PrefixPolicy::PrefixPolicy(PrefixPolicyOptions options) : options_(std::move(options)) {
  if (!options_.warn) {
    options_.warn = [](const std::string& m) { std::fprintf(stderr, "warning: %s\n", m.c_str()); };
  }
  if (options_.enabled && !options_.disk_dir.empty()) {
    disk_ = std::make_unique<kv::DiskTier>(kv::DiskTierOptions{
        .dir = options_.disk_dir,
        .budget_bytes = options_.disk_budget_bytes,
        .model_fingerprint = options_.model_fingerprint,
        .warn = options_.warn});
  }
}

Result<std::unique_ptr<PrefixPolicy>> PrefixPolicy::Create(PrefixPolicyOptions options) {
  if (options.enabled &&
      (options.snapshot_interval <= 0 || options.snapshot_interval % kSnapshotGranule)) {
    return Status::InvalidArgument("prefix_snapshot_interval must be a positive multiple of 128, "
                                   "got " + std::to_string(options.snapshot_interval));
  }
  if (!options.disk_dir.empty() && options.disk_budget_bytes < 0) {
    return Status::InvalidArgument("kv cache disk budget must be >= 0 bytes, got " +
                                   std::to_string(options.disk_budget_bytes));
  }
  return std::unique_ptr<PrefixPolicy>(new PrefixPolicy(std::move(options)));
}

std::vector<int64_t> PrefixPolicy::StopPoints(int64_t num_prompt) const {
  std::vector<int64_t> points;
  if (!options_.enabled) return points;
  // Leave at least one token to compute: its logits give the first new token.
  const int64_t last = (num_prompt - 1) / kSnapshotGranule * kSnapshotGranule;
  // The multiples of the interval before `last` (up to it when `last` is not added itself).
  const int64_t end = options_.snapshot_prompt_end ? last : last + 1;
  for (int64_t p = options_.snapshot_interval; p < end; p += options_.snapshot_interval) {
    points.push_back(p);
  }
  if (options_.snapshot_prompt_end && last >= kSnapshotGranule) points.push_back(last);
  return points;
}

int64_t PrefixPolicy::TryRestore(sched::Sequence* s, std::vector<uint8_t>* draft) {
  if (draft != nullptr) draft->clear();
  if (!options_.enabled || s->num_computed != 0) return 0;
  const int64_t max_len = s->num_tokens() - 1;
  const kv::PrefixSnapshot* snap = cache_.Lookup(s->tokens, max_len);
  if (disk_ != nullptr) {
    const int64_t on_disk = disk_->Find(s->tokens, max_len);
    if (on_disk > (snap ? snap->num_tokens : 0)) {
      if (const int64_t n = RestoreFromDisk(s, on_disk, draft); n > 0) return n;
      snap = cache_.Lookup(s->tokens, max_len);  // restoring may have evicted entries
    }
  }
  if (snap == nullptr) return 0;
  const Clock::time_point t0 = Clock::now();
  // The hit is now the most recently used entry: older entries give way for its copies.
  Status restored = s->state->RestoreSnapshot(*snap);
  while (!restored.ok() && cache_.num_entries() > 1 && EvictOne()) {
    restored = s->state->RestoreSnapshot(*snap);
  }
  if (!restored.ok()) return 0;
  s->num_computed = snap->num_tokens;
  if (draft != nullptr) *draft = snap->draft;
  ++ram_hits_;
  ram_hit_tokens_ += snap->num_tokens;
  ram_restore_seconds_ += SecondsSince(t0);
  return snap->num_tokens;
}

int64_t PrefixPolicy::RestoreFromDisk(sched::Sequence* s, int64_t n,
                                      std::vector<uint8_t>* draft) {
  const Clock::time_point t0 = Clock::now();
  Result<kv::SnapshotImage> image = disk_->Load(s->tokens, n);  // warns when untrusted
  if (!image.ok()) return 0;
  Status restored = s->state->RestoreImage(*image);
  while (restored.code() == StatusCode::kResourceExhausted && EvictOne()) {
    restored = s->state->RestoreImage(*image);
  }
  if (!restored.ok()) {
    if (restored.code() != StatusCode::kResourceExhausted) Warn(restored.message());
    return 0;
  }
  s->num_computed = n;
  ++disk_hits_;
  disk_hit_tokens_ += n;
  disk_restore_seconds_ += SecondsSince(t0);
  if (draft != nullptr) *draft = image->draft;
  // Back in RAM as the most recently used entry (sharing the sequence's compressed pages).
  if (!cache_.Contains(s->tokens, n)) {
    if (std::unique_ptr<kv::PrefixSnapshot> snap = s->state->TakeSnapshot()) {
      snap->draft = std::move(image->draft);
      cache_.Insert(s->tokens, std::move(snap));
    }
  }
  return n;
}

int64_t PrefixPolicy::MaxStepAdvance(const sched::Sequence& s) const {
  if (!options_.enabled) return std::numeric_limits<int64_t>::max();
  return kSnapshotGranule - s.num_computed % kSnapshotGranule;
}

void PrefixPolicy::SnapshotAfterStep(const sched::StepPlan& plan, const DraftFn& draft_of) {
  if (!options_.enabled) return;
  for (const sched::ScheduledChunk& c : plan.chunks) {
    sched::Sequence* s = c.seq;
    const int64_t p = s->num_computed;
    const bool stop_point =
        std::find(s->stop_points.begin(), s->stop_points.end(), p) != s->stop_points.end();
    // Past the prompt, tokens [0, p) all have their KV now (the token sampled after this
    // step has none yet): a candidate for the turn's snapshot.
    const bool turn_point = p >= s->num_prompt && p > 0 && p % kSnapshotGranule == 0;
    if (!stop_point && !turn_point) continue;
    if (cache_.Contains(s->tokens, p)) continue;
    std::unique_ptr<kv::PrefixSnapshot> snap = s->state->TakeSnapshot();
    if (!snap) continue;
    if (draft_of) snap->draft = draft_of(c);
    if (stop_point) {
      cache_.Insert(s->tokens, std::move(snap));
    } else {
      pending_[s->id] = std::move(snap);
    }
  }
}

void PrefixPolicy::OnFinish(const sched::Sequence& s, bool keep) {
  auto it = pending_.find(s.id);
  if (it == pending_.end()) return;
  std::unique_ptr<kv::PrefixSnapshot> snap = std::move(it->second);
  pending_.erase(it);
  if (!keep) return;
  // tokens[0, num_tokens) have not changed since it was taken (tokens are only appended).
  if (!cache_.Contains(s.tokens, snap->num_tokens)) {
    cache_.Insert(s.tokens, std::move(snap));
    ++turn_snapshots_;
  }
}

void PrefixPolicy::Spill(std::span<const int32_t> tokens, const kv::PrefixSnapshot& snap) {
  if (disk_ == nullptr || !disk_->stats().storing) return;
  if (disk_->Contains(tokens, snap.num_tokens)) return;
  kv::SnapshotImage image;
  image.tokens.assign(tokens.begin(), tokens.begin() + snap.num_tokens);
  if (!snap.ExportImage(&image)) return;
  image.draft = snap.draft;
  disk_->Store(image);
}

bool PrefixPolicy::EvictOne() {
  if (cache_.num_entries() > 0) {
    return cache_.EvictOne([this](std::span<const int32_t> t, const kv::PrefixSnapshot& snap) {
      Spill(t, snap);
    });
  }
  if (!pending_.empty()) {
    pending_.erase(pending_.begin());
    return true;
  }
  return false;
}

void PrefixPolicy::Clear() {
  cache_.Clear();
  pending_.clear();
  if (disk_ != nullptr) disk_->Clear();
}

void PrefixPolicy::SpillAll() {
  cache_.Visit([this](std::span<const int32_t> t, const kv::PrefixSnapshot& snap) {
    Spill(t, snap);
  });
}

void PrefixPolicy::FillStats(EngineStats* st) const {
  st->prefix_cache_entries = cache_.num_entries();
  st->prefix_ram_hits = ram_hits_;
  st->prefix_ram_hit_tokens = ram_hit_tokens_;
  st->prefix_ram_bytes = cache_.copied_bytes();
  st->prefix_ram_draft_bytes = cache_.draft_bytes();
  st->prefix_ram_restore_seconds = ram_restore_seconds_;
  st->prefix_turn_snapshots = turn_snapshots_;
  st->prefix_disk_hits = disk_hits_;
  st->prefix_disk_hit_tokens = disk_hit_tokens_;
  st->prefix_disk_restore_seconds = disk_restore_seconds_;
  if (disk_ != nullptr) {
    const kv::DiskTierStats& d = disk_->stats();
    st->prefix_disk_storing = d.storing;
    st->prefix_disk_entries = d.entries;
    st->prefix_disk_bytes = d.bytes;
    st->prefix_disk_writes = d.writes;
    st->prefix_disk_written_bytes = d.written_bytes;
    st->prefix_disk_read_bytes = d.read_bytes;
    st->prefix_disk_evicted = d.evicted;
    st->prefix_disk_rejected_files = d.rejected_files;
  }
}

}  // namespace dsv4::engine
