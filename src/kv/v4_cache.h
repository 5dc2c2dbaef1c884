// The per-sequence DeepSeek-V4 cache (spec §13.1) in the compressed formats of layout.h:
// per layer a window ring of `sliding_window` packed entries, the compressed entries (CSA,
// HCA) and CSA indexer keys, which grow as tokens arrive (never reserved for the maximum
// context), and the FP32 compressor streaming state. No dense per-token cache for compressed
// layers.
//
// This is the simple contiguous implementation; the paged cache replaces it behind the same
// accessors (WindowRow / Entry / AppendEntry / IndexerKey / State). Not thread-safe: one
// sequence is stepped by one thread at a time; kernels may read concurrently.
#pragma once

#include <cstdint>
#include <vector>

#include "kv/layout.h"
#include "model/config.h"

namespace dsv4::kv {

// Streaming state of one compressor (spec §7.6): kv and score rows [kappa*m, kappa*c] FP32,
// scores with the position bias already added. Initially kv = 0 and score = -inf.
struct CompressorState {
  int64_t ratio = 0;  // m
  int64_t width = 0;  // c
  int64_t kappa = 1;  // 2 for overlapping windows (m == 4)
  std::vector<float> kv;
  std::vector<float> score;

  void Init(int64_t m, int64_t c);
  void Reset();
  int64_t row_width() const { return kappa * width; }
  int64_t bytes() const { return static_cast<int64_t>((kv.size() + score.size()) * sizeof(float)); }
};

class V4SequenceCache {
 public:
  explicit V4SequenceCache(const model::ModelConfig& c);

  // Forgets everything (a new sequence): no entries, zeroed/-inf compressor state.
  void Reset();
  // Positions [0, num_tokens()) have been processed.
  int64_t num_tokens() const { return num_tokens_; }
  void set_num_tokens(int64_t n) { num_tokens_ = n; }

  int64_t entry_bytes() const { return entry_bytes_; }
  int64_t indexer_key_bytes() const { return key_bytes_; }

  // Ring slot of position `pos` in layer `layer`: packed entry [entry_bytes].
  uint8_t* WindowRow(int64_t layer, int64_t pos);
  const uint8_t* WindowRow(int64_t layer, int64_t pos) const;

  int64_t NumEntries(int64_t layer) const;
  const uint8_t* Entry(int64_t layer, int64_t i) const;
  uint8_t* AppendEntry(int64_t layer);  // returns the new entry's bytes to fill

  int64_t NumIndexerKeys(int64_t layer) const;
  const uint8_t* IndexerKey(int64_t layer, int64_t i) const;
  uint8_t* AppendIndexerKey(int64_t layer);

  // which = 0: attention compressor; 1: indexer compressor (CSA only).
  CompressorState& State(int64_t layer, int which);

  // Bytes held now, by component (names as in layout.h's KvFootprint).
  KvFootprint Usage() const;

 private:
  struct Layer {
    model::LayerKind kind = model::LayerKind::kSwa;
    std::vector<uint8_t> window;   // [sliding_window, entry_bytes]
    std::vector<uint8_t> entries;  // [num_entries, entry_bytes]
    std::vector<uint8_t> keys;     // [num_keys, key_bytes]
    CompressorState state[2];
  };
  const model::ModelConfig* config_;
  int64_t entry_bytes_ = 0;
  int64_t key_bytes_ = 0;
  int64_t num_tokens_ = 0;
  std::vector<Layer> layers_;
};

}  // namespace dsv4::kv
