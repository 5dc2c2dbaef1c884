// The per-sequence DeepSeek-V3.2 cache (spec §14.5) in the serving formats of layout.h: per
// layer and token one packed MLA record (656 B at 512/64: the FP8 latent with one FP32
// power-of-two scale per 128, plus the BF16 RoPE key) and one indexer key (132 B at 128: FP8
// with one FP32 scale). Both grow as tokens arrive (never reserved for the maximum context).
// V3.2 has no window ring and no streaming state: a record is final when it is written.
//
// The simple contiguous implementation; a paged cache can replace it behind the same
// accessors (MlaRecord / AppendMlaRecord / IndexerKey / AppendIndexerKey). Not thread-safe:
// one sequence is stepped by one thread at a time; kernels may read concurrently.
#pragma once

#include <cstdint>
#include <vector>

#include "kv/layout.h"
#include "checkpoint/config.h"

namespace dsv4::kv {

class V32SequenceCache {
 public:
  // `c` must be a V3.2 config (DSV4_CHECK) and outlive the cache.
  explicit V32SequenceCache(const checkpoint::ModelConfig& c);

  // Forgets everything (a new sequence); releases the memory.
  void Reset();
  // Positions [0, num_tokens()) have been processed.
  int64_t num_tokens() const { return num_tokens_; }
  void set_num_tokens(int64_t n) { num_tokens_ = n; }

  int64_t record_bytes() const { return record_bytes_; }
  int64_t indexer_key_bytes() const { return key_bytes_; }

  // Records of layer `layer`: one per position, in position order.
  int64_t NumRecords(int64_t layer) const;
  const uint8_t* MlaRecord(int64_t layer, int64_t pos) const;  // [record_bytes]
  uint8_t* AppendMlaRecord(int64_t layer);                     // the new record's bytes to fill

  int64_t NumIndexerKeys(int64_t layer) const;
  const uint8_t* IndexerKey(int64_t layer, int64_t pos) const;  // [indexer_key_bytes]
  // All of the layer's keys as one contiguous run, [NumIndexerKeys, indexer_key_bytes] (what
  // the indexer scan reads; a paged cache would hand out its pages instead). Valid until the
  // next append to the layer.
  const uint8_t* IndexerKeys(int64_t layer) const;
  uint8_t* AppendIndexerKey(int64_t layer);

  // Bytes held now, by component ("mla_latent", "indexer_keys", as in ComputeKvFootprint).
  KvFootprint Usage() const;

 private:
  struct Layer {
    std::vector<uint8_t> records;  // [num_records, record_bytes]
    std::vector<uint8_t> keys;     // [num_keys, key_bytes]
  };
  int64_t record_bytes_ = 0;
  int64_t key_bytes_ = 0;
  int64_t num_tokens_ = 0;
  std::vector<Layer> layers_;
};

}  // namespace dsv4::kv
