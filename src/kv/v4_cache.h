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
#include "kv/compressor_state.h"
#include "kv/kv_manager.h"
#include "kv/prefix_snapshot.h"
#include "kv/snapshot_file.h"
#include "kv/speculation_mark.h"
#include "checkpoint/config.h"

namespace dsv4::kv {

// V4: the compressed entries and indexer keys are shared (reference counted, copy on write);
// the window ring and the CSA compressor state (previous-window rows) are copies, since the
// sequence that made them keeps overwriting its own. That copy (sliding_window rows per layer
// plus the CSA state: ~3.9 MB for V4-Flash) is the price of exact reuse: the window rows of
// every layer at the hit position cannot be recomputed from a short tail, because each
// layer's rows depend on the previous layer's attention over its own window.
struct V4PrefixSnapshot final : PrefixSnapshot {
  ~V4PrefixSnapshot() override;
  KvManager* manager = nullptr;
  struct Layer {
    std::array<std::vector<PageId>, kNumComponents> pages;
    int64_t num_entries = 0;
    int64_t num_keys = 0;
  };
  std::vector<Layer> layers;
  // State: per layer {i64 num_entries, i64 num_keys}; pages: per layer, per component in
  // Component order, the snapshot's pages in table order.
  bool ExportImage(SnapshotImage* image) const override;
};

class V4SequenceCache {
 public:
  // A cache with its own unbounded page pool (standalone use: CLI, tests).
  explicit V4SequenceCache(const checkpoint::ModelConfig& c);
  // A cache drawing pages from `manager` (shared by all sequences; must outlive the cache).
  V4SequenceCache(const checkpoint::ModelConfig& c, KvManager* manager);
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
  // Page geometry (entries per page of each component): entries of one page are contiguous,
  // so kernels can scan them through one pointer per page.
  const PageLayout& layout() const { return manager_->layout(); }

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

  // Speculative decoding (kv::SequenceState). BeginSpeculation marks num_tokens() for up to
  // `max_tokens` appended positions (1..max_speculation_tokens(), else InvalidArgument;
  // FailedPrecondition when a mark is active) and keeps what a rollback needs: per layer the
  // window-ring slots those positions overwrite, and each compressor's CompressorUndo. The
  // undo data is heap memory of the cache (grown once, reused by later marks), not KV pages.
  // RollbackTo(n), mark <= n <= num_tokens() (else OutOfRange; FailedPrecondition without a
  // mark): the state becomes bit for bit that of a cache that only saw the first n tokens:
  // ring slots restored, compressor states rolled back, entries and indexer keys truncated
  // (their slots past the count zeroed), pages past what n needs released (reserved_tokens()
  // becomes n). EndSpeculation keeps everything. Release, RestoreSnapshot and RestoreImage
  // also end a mark; TakeSnapshot refuses (nullptr) while one is active.
  Status BeginSpeculation(int64_t max_tokens);
  Status RollbackTo(int64_t n);
  void EndSpeculation();
  bool speculating() const { return mark_.active(); }
  // The most positions a mark may take back: the window (ring slots must not be written
  // twice) and every compressor's ratio (its rows neither).
  int64_t max_speculation_tokens() const;
  // A forward appending `n` positions: FailedPrecondition when that passes the mark (nothing
  // may advance then); Ok otherwise.
  Status CheckAppend(int64_t n) const { return mark_.CheckAppend(num_tokens_, n); }

  // A snapshot of this sequence at num_tokens() (a multiple of 128, > 0); nullptr when the
  // position is not a multiple of 128, the pool has no backing memory, the budget cannot
  // hold the copies, or a speculation mark is active.
  std::unique_ptr<PrefixSnapshot> TakeSnapshot();
  // Makes this (empty) cache continue from `snapshot` (taken from a cache of the same
  // manager): its state is then bit for bit the donor's at that position.
  // ResourceExhausted (nothing taken) when the copies do not fit.
  Status RestoreSnapshot(const PrefixSnapshot& snapshot);
  // Makes this (empty) cache continue from an image of a V4PrefixSnapshot (ExportImage) of
  // this model, every page its own: then bit for bit the donor's state. DataLoss naming the
  // mismatch when the image's position, counts or pages are not what this model's layout
  // gives at that position; ResourceExhausted (nothing taken) when the pages do not fit.
  Status RestoreImage(const SnapshotImage& image);

 private:
  struct Layer {
    checkpoint::LayerKind kind = checkpoint::LayerKind::kSwa;
    std::array<std::vector<PageId>, kNumComponents> pages;
    int64_t num_entries = 0;
    int64_t num_keys = 0;
    CompressorState state[2];
    // Undo data of the active mark: ring slots of positions [mark, mark + max_tokens)
    // before it, packed entries [max_tokens, entry_bytes]; each compressor's undo.
    std::vector<uint8_t> saved_ring;
    CompressorUndo undo[2];
  };
  Component EntryComponent(const Layer& l) const;
  int64_t NumCompressors(const Layer& l) const;
  uint8_t* Slot(Component c, const Layer& l, int64_t index) const;
  void BindState(Layer& l, int64_t layer, bool reset);

  const checkpoint::ModelConfig* config_;
  std::unique_ptr<KvManager> own_manager_;
  KvManager* manager_;
  int64_t entry_bytes_ = 0;
  int64_t key_bytes_ = 0;
  int64_t num_tokens_ = 0;
  int64_t reserved_ = 0;
  std::vector<Layer> layers_;
  SpeculationMark mark_;
};

}  // namespace dsv4::kv
