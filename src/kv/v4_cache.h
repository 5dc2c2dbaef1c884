// The per-sequence DeepSeek-V4 cache (spec §13.1) on KV pages (page_layout.h): per layer a
// window ring of `sliding_window` packed entries, the compressed entries (CSA, HCA) and CSA
// indexer keys, which grow page by page as tokens arrive (never reserved for the maximum
// context), and the FP32 compressor streaming state. No dense per-token cache for compressed
// layers. Pages come from a KvManager shared by all sequences of a model.
//
// Reserve(n) allocates, all or nothing, every page positions [0, n) need; the model's forward
// pass then only reads and writes reserved pages. Not thread-safe: one sequence is stepped by
// one thread at a time; kernels may read concurrently.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/status.h"
#include "kv/kv_manager.h"
#include "model/config.h"

namespace dsv4::kv {

// Streaming state of one compressor (spec §7.6), a view into page memory (or any buffer):
// kv and score rows [kappa*m, kappa*c] FP32, scores with the position bias already added.
struct CompressorState {
  int64_t ratio = 0;  // m
  int64_t width = 0;  // c
  int64_t kappa = 1;  // 2 for overlapping windows (m == 4)
  float* kv = nullptr;
  float* score = nullptr;

  static int64_t FloatsFor(int64_t m, int64_t c);  // kv + score
  // Points the state at `storage` (FloatsFor(m, c) floats) without touching it.
  void Bind(int64_t m, int64_t c, float* storage);
  // kv = 0, score = -inf: a sequence's initial state.
  void Reset();
  int64_t row_width() const { return kappa * width; }
  int64_t rows() const { return kappa * ratio; }
};

class V4SequenceCache {
 public:
  // A cache with its own unbounded page pool (standalone use: CLI, tests).
  explicit V4SequenceCache(const model::ModelConfig& c);
  // A cache drawing pages from `manager` (shared by all sequences; must outlive the cache).
  V4SequenceCache(const model::ModelConfig& c, KvManager* manager);
  ~V4SequenceCache();
  V4SequenceCache(const V4SequenceCache&) = delete;
  V4SequenceCache& operator=(const V4SequenceCache&) = delete;

  // Makes sure pages for positions [0, n) exist. ResourceExhausted (nothing allocated) when
  // the budget cannot cover them.
  Status Reserve(int64_t n);
  int64_t reserved_tokens() const { return reserved_; }
  // Frees every page: the sequence starts over (preemption, cancellation, a new sequence).
  void Release();

  // Positions [0, num_tokens()) have been processed.
  int64_t num_tokens() const { return num_tokens_; }
  void set_num_tokens(int64_t n);

  int64_t entry_bytes() const { return entry_bytes_; }
  int64_t indexer_key_bytes() const { return key_bytes_; }

  // Ring slot of position `pos` of layer `layer`: packed entry [entry_bytes].
  uint8_t* WindowRow(int64_t layer, int64_t pos);
  const uint8_t* WindowRow(int64_t layer, int64_t pos) const;

  int64_t NumEntries(int64_t layer) const { return layers_[layer].num_entries; }
  const uint8_t* Entry(int64_t layer, int64_t i) const;
  uint8_t* AppendEntry(int64_t layer);

  int64_t NumIndexerKeys(int64_t layer) const { return layers_[layer].num_keys; }
  const uint8_t* IndexerKey(int64_t layer, int64_t i) const;
  uint8_t* AppendIndexerKey(int64_t layer);

  // which = 0: attention compressor; 1: indexer compressor (CSA only).
  CompressorState& State(int64_t layer, int which);

  // Bytes of the pages held now, by component.
  KvFootprint Usage() const;

 private:
  struct Layer {
    model::LayerKind kind = model::LayerKind::kSwa;
    std::array<std::vector<PageId>, kNumComponents> pages;
    int64_t num_entries = 0;
    int64_t num_keys = 0;
    CompressorState state[2];
  };
  struct Grown {  // a page appended by the current Reserve call
    std::vector<PageId>* table;
    Component component;
  };
  Component EntryComponent(const Layer& l) const;
  uint8_t* Slot(Component c, const Layer& l, int64_t index) const;
  bool Grow(Layer& l, Component c, int64_t pages, std::vector<Grown>* got);
  void BindState(Layer& l, int64_t layer);

  const model::ModelConfig* config_;
  std::unique_ptr<KvManager> own_manager_;
  KvManager* manager_;
  int64_t entry_bytes_ = 0;
  int64_t key_bytes_ = 0;
  int64_t num_tokens_ = 0;
  int64_t reserved_ = 0;
  std::vector<Layer> layers_;
};

}  // namespace dsv4::kv
