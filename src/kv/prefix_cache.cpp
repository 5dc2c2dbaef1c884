#include "kv/prefix_cache.h"

#include <algorithm>
#include <set>

#include "kv/snapshot_file.h"

namespace dsv4::kv {

namespace {
uint64_t Hash(std::span<const int32_t> tokens) { return HashTokens(tokens); }
}  // namespace

bool PrefixCache::Contains(std::span<const int32_t> tokens, int64_t n) const {
  if (n > static_cast<int64_t>(tokens.size())) return false;
  const auto prefix = tokens.first(static_cast<size_t>(n));
  auto [lo, hi] = index_.equal_range({n, Hash(prefix)});
  for (auto it = lo; it != hi; ++it) {
    if (std::equal(prefix.begin(), prefix.end(), it->second->tokens.begin())) return true;
  }
  return false;
}

void PrefixCache::Insert(std::span<const int32_t> tokens, std::unique_ptr<PrefixSnapshot> snapshot) {
  const int64_t n = snapshot->num_tokens;
  if (Contains(tokens, n)) {
    // The longest cached prefix of at most n tokens is this one.
    auto* cached = const_cast<PrefixSnapshot*>(Lookup(tokens, n));
    if (cached->draft.empty() && !snapshot->draft.empty()) {
      draft_bytes_ += static_cast<int64_t>(snapshot->draft.size());
      cached->draft = std::move(snapshot->draft);
    }
    return;
  }
  const auto prefix = tokens.first(static_cast<size_t>(n));
  copied_bytes_ += snapshot->copied_bytes;
  draft_bytes_ += static_cast<int64_t>(snapshot->draft.size());
  lru_.push_front({std::vector<int32_t>(prefix.begin(), prefix.end()), std::move(snapshot)});
  index_.insert({{n, Hash(prefix)}, lru_.begin()});
}

const PrefixSnapshot* PrefixCache::Lookup(std::span<const int32_t> tokens, int64_t max_len) {
  // Candidate lengths, longest first; hash each candidate prefix once.
  std::set<int64_t, std::greater<>> lengths;
  for (const auto& [key, it] : index_) {
    if (key.first <= max_len && key.first <= static_cast<int64_t>(tokens.size())) {
      lengths.insert(key.first);
    }
  }
  for (int64_t n : lengths) {
    const auto prefix = tokens.first(static_cast<size_t>(n));
    auto [lo, hi] = index_.equal_range({n, Hash(prefix)});
    for (auto it = lo; it != hi; ++it) {
      if (std::equal(prefix.begin(), prefix.end(), it->second->tokens.begin())) {
        lru_.splice(lru_.begin(), lru_, it->second);  // most recently used
        return lru_.front().snapshot.get();
      }
    }
  }
  return nullptr;
}

bool PrefixCache::EvictOne(const EvictFn& on_evict) {
  if (lru_.empty()) return false;
  auto victim = std::prev(lru_.end());
  if (on_evict) on_evict(victim->tokens, *victim->snapshot);
  copied_bytes_ -= victim->snapshot->copied_bytes;
  draft_bytes_ -= static_cast<int64_t>(victim->snapshot->draft.size());
  const int64_t n = victim->snapshot->num_tokens;
  auto [lo, hi] = index_.equal_range({n, Hash(victim->tokens)});
  for (auto it = lo; it != hi; ++it) {
    if (it->second == victim) {
      index_.erase(it);
      break;
    }
  }
  lru_.erase(victim);
  return true;
}

void PrefixCache::Visit(const EvictFn& fn) const {
  for (auto it = lru_.rbegin(); it != lru_.rend(); ++it) fn(it->tokens, *it->snapshot);
}

void PrefixCache::Clear() {
  while (EvictOne()) {
  }
}

}  // namespace dsv4::kv
