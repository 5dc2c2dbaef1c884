#include "kv/v32_cache.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>

#include "core/check.h"
#include "kv/page_reservation.h"
#include "kv/snapshot_pages.h"

namespace dsv4::kv {
namespace {

// Layer::pages[which] holds pages of kComponents[which].
constexpr std::array<Component, 2> kComponents = {Component::kMlaLatent,
                                                  Component::kMlaIndexerKeys};

}  // namespace

V32SequenceCache::V32SequenceCache(const checkpoint::ModelConfig& c)
    : V32SequenceCache(c, nullptr) {}

V32SequenceCache::V32SequenceCache(const checkpoint::ModelConfig& c, KvManager* manager)
    : manager_(manager) {
  DSV4_CHECK(c.arch == checkpoint::Arch::kV32);
  const KvFormats f = DefaultKvFormats(c.arch);
  if (manager_ == nullptr) {
    own_manager_ = std::make_unique<KvManager>(PageLayout(c, f),
                                               std::numeric_limits<int64_t>::max() / 2);
    manager_ = own_manager_.get();
  }
  record_bytes_ = MlaRecordBytes(c, f.mla);
  key_bytes_ = IndexerKeyBytes(c.index_head_dim, f.indexer);
  const ComponentLayout* records = manager_->layout().Find(Component::kMlaLatent);
  const ComponentLayout* keys = manager_->layout().Find(Component::kMlaIndexerKeys);
  DSV4_CHECK(records != nullptr && keys != nullptr && records->entry_bytes == record_bytes_ &&
             keys->entry_bytes == key_bytes_);
  records_per_page_ = records->entries_per_page;
  keys_per_page_ = keys->entries_per_page;
  layers_.resize(static_cast<size_t>(c.num_hidden_layers));
}

V32SequenceCache::~V32SequenceCache() { Release(); }

Status V32SequenceCache::Reserve(int64_t n) {
  if (n <= reserved_) return Status::Ok();
  PageReservation plan(manager_, n);
  for (Layer& l : layers_) {
    plan.Plan(kComponents[0], &l.pages[0], l.num_records);
    plan.Plan(kComponents[1], &l.pages[1], l.num_keys);
  }
  DSV4_RETURN_IF_ERROR(plan.Commit());
  reserved_ = n;
  return Status::Ok();
}

void V32SequenceCache::Release() {
  for (Layer& l : layers_) {
    for (int which = 0; which < 2; ++which) {
      for (PageId id : l.pages[which]) manager_->pool(kComponents[which]).Release(id);
      l.pages[which].clear();
    }
    l.num_records = l.num_keys = 0;
  }
  num_tokens_ = reserved_ = 0;
  mark_.End();
}

Status V32SequenceCache::BeginSpeculation(int64_t max_tokens) {
  return mark_.Begin(num_tokens_, max_tokens, std::numeric_limits<int64_t>::max() / 2,
                     "any positive count");
}

Status V32SequenceCache::RollbackTo(int64_t n) {
  DSV4_RETURN_IF_ERROR(mark_.CheckRollback(num_tokens_, n));
  mark_.End();
  for (Layer& l : layers_) {
    l.num_records = TruncateTable(manager_, kComponents[0], &l.pages[0], n, l.num_records);
    l.num_keys = TruncateTable(manager_, kComponents[1], &l.pages[1], n, l.num_keys);
  }
  num_tokens_ = reserved_ = n;
  return Status::Ok();
}

void V32SequenceCache::set_num_tokens(int64_t n) {
  DSV4_CHECK(n <= reserved_);
  num_tokens_ = n;
}

uint8_t* V32SequenceCache::Slot(int which, const Layer& l, int64_t index) const {
  const int64_t per = which == 0 ? records_per_page_ : keys_per_page_;
  const auto& table = l.pages[which];
  const int64_t page = index / per;
  DSV4_DCHECK(page < static_cast<int64_t>(table.size()));
  return manager_->pool(kComponents[which]).data(table[page]) +
         (index % per) * (which == 0 ? record_bytes_ : key_bytes_);
}

const uint8_t* V32SequenceCache::MlaRecord(int64_t layer, int64_t pos) const {
  DSV4_DCHECK(pos >= 0 && pos < NumRecords(layer));
  return Slot(0, layers_[layer], pos);
}
uint8_t* V32SequenceCache::AppendMlaRecord(int64_t layer) {
  Layer& l = layers_[layer];
  return Slot(0, l, l.num_records++);
}

const uint8_t* V32SequenceCache::IndexerKey(int64_t layer, int64_t pos) const {
  DSV4_DCHECK(pos >= 0 && pos < NumIndexerKeys(layer));
  return Slot(1, layers_[layer], pos);
}
uint8_t* V32SequenceCache::AppendIndexerKey(int64_t layer) {
  Layer& l = layers_[layer];
  return Slot(1, l, l.num_keys++);
}

void V32SequenceCache::IndexerKeyPages(int64_t layer, int64_t n,
                                       std::vector<const uint8_t*>* pages) const {
  DSV4_DCHECK(n <= NumIndexerKeys(layer));
  const auto& table = layers_[layer].pages[1];
  const BlockPool& pool = manager_->pool(Component::kMlaIndexerKeys);
  pages->clear();
  for (int64_t pg = 0; pg * keys_per_page_ < n; ++pg) pages->push_back(pool.data(table[pg]));
}

KvFootprint V32SequenceCache::Usage() const {
  std::array<int64_t, kNumComponents> pages{};
  for (const Layer& l : layers_) {
    for (int which = 0; which < 2; ++which) {
      pages[static_cast<size_t>(kComponents[which])] += static_cast<int64_t>(l.pages[which].size());
    }
  }
  return PagedFootprint(manager_->layout(), num_tokens_, pages);
}

// ---- Prefix snapshots ----------------------------------------------------------------------

V32PrefixSnapshot::~V32PrefixSnapshot() {
  for (const Layer& l : layers) {
    for (PageId id : l.records) manager->pool(Component::kMlaLatent).Release(id);
    for (PageId id : l.keys) manager->pool(Component::kMlaIndexerKeys).Release(id);
  }
}

std::unique_ptr<PrefixSnapshot> V32SequenceCache::TakeSnapshot() {
  const int64_t p = num_tokens_;
  if (p <= 0 || p % 128 != 0 || !manager_->backing() || mark_.active()) return nullptr;
  auto snap = std::make_unique<V32PrefixSnapshot>();
  snap->manager = manager_;
  snap->num_tokens = p;
  snap->layers.resize(layers_.size());
  // Only the pages holding positions before p (reserved-ahead pages stay private); forget the
  // reservation so the next Reserve checks every page it writes (and copies shared ones).
  reserved_ = num_tokens_;
  for (size_t i = 0; i < layers_.size(); ++i) {
    for (int which = 0; which < 2; ++which) {
      const Component c = kComponents[which];
      const auto& from = layers_[i].pages[which];
      auto& to = which == 0 ? snap->layers[i].records : snap->layers[i].keys;
      to.assign(from.begin(), from.begin() + manager_->layout().PagesAt(c, p));
      for (PageId id : to) manager_->pool(c).AddRef(id);
    }
  }
  return snap;
}

Status V32SequenceCache::RestoreSnapshot(const PrefixSnapshot& base) {
  const auto* snap = dynamic_cast<const V32PrefixSnapshot*>(&base);
  mark_.End();
  DSV4_CHECK(snap != nullptr && reserved_ == 0 && snap->manager == manager_ &&
             snap->layers.size() == layers_.size());
  for (size_t i = 0; i < layers_.size(); ++i) {
    Layer& l = layers_[i];
    l.pages[0] = snap->layers[i].records;
    l.pages[1] = snap->layers[i].keys;
    for (int which = 0; which < 2; ++which) {
      for (PageId id : l.pages[which]) manager_->pool(kComponents[which]).AddRef(id);
    }
    l.num_records = l.num_keys = snap->num_tokens;
  }
  num_tokens_ = reserved_ = snap->num_tokens;
  return Status::Ok();
}

bool V32PrefixSnapshot::ExportImage(SnapshotImage* image) const {
  if (!manager->backing()) return false;
  image->state.clear();
  image->pages.clear();
  for (size_t i = 0; i < layers.size(); ++i) {
    for (int which = 0; which < 2; ++which) {
      const Component c = kComponents[which];
      AppendPageImages(manager->pool(c), c, static_cast<uint32_t>(i),
                       which == 0 ? layers[i].records : layers[i].keys, image);
    }
  }
  return true;
}

Status V32SequenceCache::RestoreImage(const SnapshotImage& image) {
  mark_.End();
  DSV4_CHECK(reserved_ == 0);
  const PageLayout& pl = manager_->layout();
  const int64_t n = static_cast<int64_t>(image.tokens.size());
  DSV4_RETURN_IF_ERROR(CheckImageLength(image, manager_->backing()));
  if (!image.state.empty()) {
    return ImageMismatch(image, "state of " + std::to_string(image.state.size()) +
                                    " bytes, expected none");
  }
  // ExportImage's order: per layer, the record pages, then the key pages.
  int64_t bytes = 0;
  size_t next = 0;
  for (size_t i = 0; i < layers_.size(); ++i) {
    for (Component c : kComponents) {
      const int64_t page_bytes = pl.Find(c)->page_bytes();
      for (int64_t k = 0; k < pl.PagesAt(c, n); ++k, ++next) {
        DSV4_RETURN_IF_ERROR(CheckImagePage(image, next, i, c, page_bytes));
        bytes += page_bytes;
      }
    }
  }
  if (next != image.pages.size()) return ImageMismatch(image, "it has too many pages");
  if (bytes > manager_->available_bytes()) {
    return Status::ResourceExhausted("no KV memory to restore a cached prefix from disk");
  }
  next = 0;
  for (size_t i = 0; i < layers_.size(); ++i) {
    Layer& l = layers_[i];
    for (int which = 0; which < 2; ++which) {
      const Component c = kComponents[which];
      BlockPool& pool = manager_->pool(c);
      for (int64_t k = 0; k < pl.PagesAt(c, n); ++k, ++next) {
        const PageId id = *pool.Allocate();
        std::memcpy(pool.data(id), image.pages[next].bytes.data(), image.pages[next].bytes.size());
        l.pages[which].push_back(id);
      }
    }
    l.num_records = l.num_keys = n;
  }
  num_tokens_ = reserved_ = n;
  return Status::Ok();
}

}  // namespace dsv4::kv
