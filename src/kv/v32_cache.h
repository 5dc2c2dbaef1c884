// The per-sequence DeepSeek-V3.2 cache (spec §14.5) on KV pages (page_layout.h), in the
// serving formats of layout.h: per layer and token one packed MLA record (656 B at 512/64: the
// FP8 latent with one FP32 power-of-two scale per 128, plus the BF16 RoPE key; component
// kMlaLatent) and one indexer key (132 B at 128: FP8 with one FP32 scale; kMlaIndexerKeys).
// Both grow page by page as tokens arrive (never reserved for the maximum context). V3.2 has
// no window ring and no streaming state: a record is final when it is written, so a prefix
// snapshot is page references only.
//
// Reserve(n) allocates, all or nothing, every page positions [0, n) need; the forward pass
// then only reads and writes reserved pages. Not thread-safe: one sequence is stepped by one
// thread at a time; kernels may read concurrently.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/status.h"
#include "kv/kv_manager.h"
#include "kv/layout.h"
#include "kv/prefix_snapshot.h"
#include "kv/speculation_mark.h"
#include "checkpoint/config.h"

namespace dsv4::kv {

// A V3.2 sequence's first num_tokens positions: its record and key pages that hold them,
// shared (reference counted). Nothing is copied (copied_bytes == 0): every record is final.
// A page the donor keeps appending into is copied on its next write (V32SequenceCache::Reserve).
struct V32PrefixSnapshot final : PrefixSnapshot {
  ~V32PrefixSnapshot() override;
  // The disk tier's image (snapshot_file.h): no state; per layer its record pages, then its
  // key pages.
  bool ExportImage(SnapshotImage* image) const override;
  KvManager* manager = nullptr;
  struct Layer {
    std::vector<PageId> records;  // kMlaLatent pages
    std::vector<PageId> keys;     // kMlaIndexerKeys pages
  };
  std::vector<Layer> layers;
};

class V32SequenceCache {
 public:
  // A cache with its own unbounded page pool (standalone use: CLI, tests, benches). `c` must
  // be a V3.2 config (DSV4_CHECK) and outlive the cache.
  explicit V32SequenceCache(const checkpoint::ModelConfig& c);
  // A cache drawing pages from `manager` (built from the V3.2 PageLayout of `c`, shared by all
  // sequences; must outlive the cache).
  V32SequenceCache(const checkpoint::ModelConfig& c, KvManager* manager);
  ~V32SequenceCache();
  V32SequenceCache(const V32SequenceCache&) = delete;
  V32SequenceCache& operator=(const V32SequenceCache&) = delete;

  // Makes sure pages for positions [0, n) exist (and that none of the pages positions
  // num_tokens().. are written into is shared). ResourceExhausted (nothing allocated) when
  // the budget cannot cover them.
  Status Reserve(int64_t n);
  int64_t reserved_tokens() const { return reserved_; }
  // Frees every page: the sequence starts over (preemption, cancellation, a new sequence).
  void Release();

  // Positions [0, num_tokens()) have been processed.
  int64_t num_tokens() const { return num_tokens_; }
  void set_num_tokens(int64_t n);

  int64_t record_bytes() const { return record_bytes_; }
  int64_t indexer_key_bytes() const { return key_bytes_; }
  const PageLayout& layout() const { return manager_->layout(); }

  // Records of layer `layer`: one per position, in position order. Appends write into
  // reserved pages (DSV4_DCHECK).
  int64_t NumRecords(int64_t layer) const { return layers_[layer].num_records; }
  const uint8_t* MlaRecord(int64_t layer, int64_t pos) const;  // [record_bytes]
  uint8_t* AppendMlaRecord(int64_t layer);                     // the new record's bytes to fill

  int64_t NumIndexerKeys(int64_t layer) const { return layers_[layer].num_keys; }
  const uint8_t* IndexerKey(int64_t layer, int64_t pos) const;  // [indexer_key_bytes]
  uint8_t* AppendIndexerKey(int64_t layer);
  // The indexer scan's view of keys [0, n) of a layer: `*pages` becomes one pointer per page
  // (keys_per_page() keys of indexer_key_bytes() each, contiguous within a page). Valid until
  // the next Reserve or Release.
  void IndexerKeyPages(int64_t layer, int64_t n, std::vector<const uint8_t*>* pages) const;
  int64_t keys_per_page() const { return keys_per_page_; }

  // Bytes of the pages held now, by component ("mla_latent", "indexer_keys").
  KvFootprint Usage() const;

  // Speculative decoding (kv::SequenceState): records and keys are final when written, so a
  // mark keeps no undo data, only its position. BeginSpeculation marks num_tokens() for up to
  // `max_tokens` appended positions (>= 1, else InvalidArgument; FailedPrecondition when a
  // mark is active). RollbackTo(n), mark <= n <= num_tokens() (else OutOfRange;
  // FailedPrecondition without a mark): records and keys truncated to n (their slots past n
  // zeroed), pages past what n needs released (reserved_tokens() becomes n): bit for bit a
  // cache that only saw n tokens. EndSpeculation keeps everything. Release, RestoreSnapshot
  // and RestoreImage also end a mark; TakeSnapshot refuses (nullptr) while one is active.
  Status BeginSpeculation(int64_t max_tokens);
  Status RollbackTo(int64_t n);
  void EndSpeculation() { mark_.End(); }
  bool speculating() const { return mark_.active(); }
  // A forward appending `n` positions: FailedPrecondition when that passes the mark.
  Status CheckAppend(int64_t n) const { return mark_.CheckAppend(num_tokens_, n); }

  // A snapshot at num_tokens() (a multiple of 128, > 0): references to the pages holding
  // positions [0, num_tokens()); nullptr otherwise, when the pool has no backing memory, or
  // while a speculation mark is active.
  std::unique_ptr<PrefixSnapshot> TakeSnapshot();
  // Makes this (empty) cache continue from `snapshot` (a V32PrefixSnapshot of the same
  // manager): its contents are then bit for bit the donor's at that position. Takes no
  // pages, so it cannot fail.
  Status RestoreSnapshot(const PrefixSnapshot& snapshot);
  // Makes this (empty) cache continue from an image of a V32PrefixSnapshot (ExportImage) of
  // this model read from disk, in pages of its own. DataLoss naming the mismatch when the
  // image's length, state or pages are not what this model's layout holds at its position;
  // ResourceExhausted when the budget cannot hold the pages (nothing allocated).
  Status RestoreImage(const SnapshotImage& image);

 private:
  struct Layer {
    std::array<std::vector<PageId>, 2> pages;  // [0] records, [1] indexer keys
    int64_t num_records = 0;
    int64_t num_keys = 0;
  };
  uint8_t* Slot(int which, const Layer& l, int64_t index) const;

  std::unique_ptr<KvManager> own_manager_;
  KvManager* manager_;
  int64_t record_bytes_ = 0;
  int64_t key_bytes_ = 0;
  int64_t records_per_page_ = 0;
  int64_t keys_per_page_ = 0;
  int64_t num_tokens_ = 0;
  int64_t reserved_ = 0;
  std::vector<Layer> layers_;
  SpeculationMark mark_;
};

}  // namespace dsv4::kv
