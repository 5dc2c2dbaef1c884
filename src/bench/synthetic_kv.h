// Synthetic cache contents for the benches: valid packed entries in the engine's storage
// formats (made by the engine's own encoders from random values), written into real caches
// in bulk through the cache APIs, so that 1M-token depths are reachable in seconds without a
// 1M-token prefill. Values are random; sizes, counts and states are those a real run holds.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "kv/v32_cache.h"
#include "kv/v4_cache.h"
#include "checkpoint/config.h"

namespace dsv4::bench {

// A few thousand distinct encoded entries of each format of `c`'s cache, reused cyclically
// (encoding a million entries one by one would dominate the run).
class EntryPool {
 public:
  EntryPool(const checkpoint::ModelConfig& c, uint64_t seed, int64_t size = 2048);

  int64_t size() const { return size_; }
  // V4: a packed KV entry [EntryBytes] / a packed FP4 indexer key [68 at 128].
  const uint8_t* KvEntry(int64_t i) const { return At(kv_entries_, entry_bytes_, i); }
  const uint8_t* Fp4Key(int64_t i) const { return At(fp4_keys_, fp4_key_bytes_, i); }
  // V3.2: a packed MLA record [656 at 512/64] / an FP8 indexer key [132 at 128].
  const uint8_t* MlaRecord(int64_t i) const { return At(mla_records_, record_bytes_, i); }
  const uint8_t* Fp8Key(int64_t i) const { return At(fp8_keys_, fp8_key_bytes_, i); }

 private:
  const uint8_t* At(const std::vector<uint8_t>& v, int64_t bytes, int64_t i) const {
    return v.data() + (i % size_) * bytes;
  }
  int64_t size_;
  int64_t entry_bytes_ = 0, fp4_key_bytes_ = 0, record_bytes_ = 0, fp8_key_bytes_ = 0;
  std::vector<uint8_t> kv_entries_, fp4_keys_, mla_records_, fp8_keys_;
};

// Grows a V4 cache from cache.num_tokens() to n tokens (n >= num_tokens()) as if positions
// [num_tokens(), n) had been run: reserves the pages, appends every compressed entry and CSA
// indexer key that is complete at n, writes the window rows of the last min(n, window)
// positions, and steps the compressors (the engine's CompressorStep, random projections)
// through the windows still open at n, so their streaming state is the one a real run holds
// (previous and partial window rows). Leaves num_tokens() == n. ResourceExhausted when the
// manager's budget cannot hold the pages.
Status FillV4Cache(const checkpoint::ModelConfig& c, const EntryPool& pool, int64_t n, uint64_t seed,
                   kv::V4SequenceCache& cache);

// Grows a V3.2 cache to n tokens: one MLA record and one indexer key per new position and
// layer, in pages it reserves first. Leaves num_tokens() == n. ResourceExhausted when the
// cache's manager cannot hold the pages.
Status FillV32Cache(const checkpoint::ModelConfig& c, const EntryPool& pool, int64_t n,
                    kv::V32SequenceCache& cache);

}  // namespace dsv4::bench
