// Cached prompt prefixes: snapshots of sequences at multiples of 128 tokens, found again by
// the exact token prefix, evicted least-recently-used when the KV budget needs their pages.
// Not thread-safe: the engine thread owns it.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <span>
#include <vector>

#include "kv/v4_cache.h"

namespace dsv4::kv {

class PrefixCache {
 public:
  PrefixCache() = default;
  ~PrefixCache() { Clear(); }
  PrefixCache(const PrefixCache&) = delete;
  PrefixCache& operator=(const PrefixCache&) = delete;

  // Keeps `snapshot` for tokens[0, snapshot->num_tokens). An equal prefix already cached is
  // kept (and marked used) and the new snapshot dropped, except its draft bytes when the
  // cached one has none.
  void Insert(std::span<const int32_t> tokens, std::unique_ptr<PrefixSnapshot> snapshot);
  // True when tokens[0, n) is cached.
  bool Contains(std::span<const int32_t> tokens, int64_t n) const;
  // The longest cached prefix of `tokens` no longer than `max_len`; nullptr if none. Marks it
  // most recently used.
  const PrefixSnapshot* Lookup(std::span<const int32_t> tokens, int64_t max_len);
  // Called with an entry's tokens and snapshot just before eviction drops it (the disk tier
  // writes it out there).
  using EvictFn = std::function<void(std::span<const int32_t>, const PrefixSnapshot&)>;
  // Drops the least recently used entry, after `on_evict` if given; false when empty.
  bool EvictOne(const EvictFn& on_evict = {});
  void Clear();
  // Calls `fn` on every entry, least recently used first.
  void Visit(const EvictFn& fn) const;

  int64_t num_entries() const { return static_cast<int64_t>(lru_.size()); }
  // Bytes of pages the entries own alone (PrefixSnapshot::copied_bytes).
  int64_t copied_bytes() const { return copied_bytes_; }
  // Bytes of the entries' PrefixSnapshot::draft (heap).
  int64_t draft_bytes() const { return draft_bytes_; }

 private:
  struct Entry {
    std::vector<int32_t> tokens;
    std::unique_ptr<PrefixSnapshot> snapshot;
  };
  int64_t copied_bytes_ = 0;
  int64_t draft_bytes_ = 0;
  std::list<Entry> lru_;  // front = most recently used
  std::multimap<std::pair<int64_t, uint64_t>, std::list<Entry>::iterator> index_;  // (len, hash)
};

}  // namespace dsv4::kv
