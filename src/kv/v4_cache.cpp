#include "kv/v4_cache.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>

#include "core/check.h"
#include "core/grow.h"
#include "kv/page_reservation.h"
#include "kv/snapshot_pages.h"

namespace dsv4::kv {

using checkpoint::LayerKind;

namespace {

// Compressor `which` of a layer: {m, c} (0: the attention compressor, 1: the CSA indexer's).
std::array<int64_t, 2> CompressorShape(const checkpoint::ModelConfig& c, int64_t layer, int which) {
  return which == 0 ? std::array<int64_t, 2>{c.ratio(layer), c.head_dim}
                    : std::array<int64_t, 2>{4, c.index_head_dim};
}

}  // namespace

V4SequenceCache::V4SequenceCache(const checkpoint::ModelConfig& c)
    : V4SequenceCache(c, nullptr) {}

V4SequenceCache::V4SequenceCache(const checkpoint::ModelConfig& c, KvManager* manager)
    : config_(&c), manager_(manager) {
  DSV4_CHECK(c.arch == checkpoint::Arch::kV4);
  const KvFormats f = DefaultKvFormats(c.arch);
  if (manager_ == nullptr) {
    own_manager_ = std::make_unique<KvManager>(PageLayout(c, f),
                                               std::numeric_limits<int64_t>::max() / 2);
    manager_ = own_manager_.get();
  }
  entry_bytes_ = EntryBytes(c, f.entry);
  key_bytes_ = IndexerKeyBytes(c.index_head_dim, f.indexer);
  layers_.resize(static_cast<size_t>(c.num_hidden_layers));
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers_[i].kind = c.layer_kind(i);
}

V4SequenceCache::~V4SequenceCache() { Release(); }

Component V4SequenceCache::EntryComponent(const Layer& l) const {
  return l.kind == LayerKind::kCsa ? Component::kCsaEntries : Component::kHcaEntries;
}

Status V4SequenceCache::Reserve(int64_t n) {
  if (n <= reserved_) return Status::Ok();
  PageReservation plan(manager_, n);
  for (Layer& l : layers_) {
    auto table = [&](Component c) { return &l.pages[static_cast<size_t>(c)]; };
    plan.Plan(Component::kSwaWindow, table(Component::kSwaWindow), 0);
    if (l.kind == LayerKind::kCsa) {
      plan.Plan(Component::kCsaEntries, table(Component::kCsaEntries), l.num_entries);
      plan.Plan(Component::kCsaIndexerKeys, table(Component::kCsaIndexerKeys), l.num_keys);
      plan.Plan(Component::kCsaState, table(Component::kCsaState), 0);
    } else if (l.kind == LayerKind::kHca) {
      plan.Plan(Component::kHcaEntries, table(Component::kHcaEntries), l.num_entries);
      plan.Plan(Component::kHcaState, table(Component::kHcaState), 0);
    }
  }
  DSV4_RETURN_IF_ERROR(plan.Commit());
  for (int64_t i = 0; i < static_cast<int64_t>(layers_.size()); ++i) {
    if (layers_[i].kind != LayerKind::kSwa && layers_[i].state[0].kv == nullptr) {
      BindState(layers_[i], i, /*reset=*/true);
    }
  }
  reserved_ = n;
  return Status::Ok();
}

int64_t V4SequenceCache::NumCompressors(const Layer& l) const {
  return l.kind == LayerKind::kCsa ? 2 : l.kind == LayerKind::kHca ? 1 : 0;
}

void V4SequenceCache::BindState(Layer& l, int64_t layer, bool reset) {
  const Component c = l.kind == LayerKind::kCsa ? Component::kCsaState : Component::kHcaState;
  auto& table = l.pages[static_cast<size_t>(c)];
  if (table.empty() || !manager_->backing()) return;
  float* storage = reinterpret_cast<float*>(manager_->pool(c).data(table[0]));
  for (int which = 0; which < NumCompressors(l); ++which) {
    const auto [m, width] = CompressorShape(*config_, layer, which);
    l.state[which].Bind(m, width, storage);
    if (reset) l.state[which].Reset();
    storage += CompressorState::FloatsFor(m, width);
  }
}

void V4SequenceCache::Release() {
  for (Layer& l : layers_) {
    for (int c = 0; c < kNumComponents; ++c) {
      for (PageId id : l.pages[c]) manager_->pool(static_cast<Component>(c)).Release(id);
      l.pages[c].clear();
    }
    l.num_entries = l.num_keys = 0;
    l.state[0] = l.state[1] = CompressorState{};
  }
  num_tokens_ = reserved_ = 0;
  mark_.End();
}

void V4SequenceCache::set_num_tokens(int64_t n) {
  DSV4_CHECK(n <= reserved_);
  num_tokens_ = n;
}

uint8_t* V4SequenceCache::Slot(Component c, const Layer& l, int64_t index) const {
  const ComponentLayout* cl = manager_->layout().Find(c);
  const auto& table = l.pages[static_cast<size_t>(c)];
  const int64_t page = index / cl->entries_per_page;
  DSV4_DCHECK(page < static_cast<int64_t>(table.size()));
  return manager_->pool(c).data(table[page]) + (index % cl->entries_per_page) * cl->entry_bytes;
}

uint8_t* V4SequenceCache::WindowRow(int64_t layer, int64_t pos) {
  return Slot(Component::kSwaWindow, layers_[layer], pos % config_->sliding_window);
}
const uint8_t* V4SequenceCache::WindowRow(int64_t layer, int64_t pos) const {
  return Slot(Component::kSwaWindow, layers_[layer], pos % config_->sliding_window);
}

const uint8_t* V4SequenceCache::Entry(int64_t layer, int64_t i) const {
  DSV4_DCHECK(i < layers_[layer].num_entries);
  return Slot(EntryComponent(layers_[layer]), layers_[layer], i);
}
uint8_t* V4SequenceCache::AppendEntry(int64_t layer) {
  Layer& l = layers_[layer];
  return Slot(EntryComponent(l), l, l.num_entries++);
}

const uint8_t* V4SequenceCache::IndexerKey(int64_t layer, int64_t i) const {
  DSV4_DCHECK(i < layers_[layer].num_keys);
  return Slot(Component::kCsaIndexerKeys, layers_[layer], i);
}
uint8_t* V4SequenceCache::AppendIndexerKey(int64_t layer) {
  Layer& l = layers_[layer];
  return Slot(Component::kCsaIndexerKeys, l, l.num_keys++);
}

CompressorState& V4SequenceCache::State(int64_t layer, int which) {
  DSV4_DCHECK(layers_[layer].state[which].kv != nullptr);
  return layers_[layer].state[which];
}

KvFootprint V4SequenceCache::Usage() const {
  std::array<int64_t, kNumComponents> pages{};
  for (const Layer& l : layers_) {
    for (int c = 0; c < kNumComponents; ++c) pages[c] += static_cast<int64_t>(l.pages[c].size());
  }
  return PagedFootprint(manager_->layout(), num_tokens_, pages);
}


// ---- Speculative decoding ------------------------------------------------------------------

int64_t V4SequenceCache::max_speculation_tokens() const {
  int64_t limit = config_->sliding_window;
  for (int64_t i = 0; i < static_cast<int64_t>(layers_.size()); ++i) {
    for (int which = 0; which < NumCompressors(layers_[i]); ++which) {
      const int64_t m = CompressorShape(*config_, i, which)[0];
      if (CompressorState::KappaFor(m) == 1) limit = std::min(limit, m);
    }
  }
  return limit;
}

Status V4SequenceCache::BeginSpeculation(int64_t max_tokens) {
  DSV4_RETURN_IF_ERROR(mark_.Begin(num_tokens_, max_tokens, max_speculation_tokens(),
                                   "the window and the HCA ratio"));
  if (!manager_->backing()) return Status::Ok();  // pages and counts only
  const int64_t pos0 = num_tokens_, W = config_->sliding_window;
  const ComponentLayout* ring = manager_->layout().Find(Component::kSwaWindow);
  for (int64_t i = 0; i < static_cast<int64_t>(layers_.size()); ++i) {
    Layer& l = layers_[i];
    // The slots the marked positions overwrite; a slot of a page not allocated yet reads as
    // the zeros its page will be allocated with.
    uint8_t* saved = GrowTo(l.saved_ring, max_tokens * entry_bytes_);
    const auto& table = l.pages[static_cast<size_t>(Component::kSwaWindow)];
    for (int64_t k = 0; k < max_tokens; ++k) {
      const int64_t slot = (pos0 + k) % W;
      if (slot / ring->entries_per_page < static_cast<int64_t>(table.size())) {
        std::memcpy(saved + k * entry_bytes_, WindowRow(i, pos0 + k),
                    static_cast<size_t>(entry_bytes_));
      } else {
        std::memset(saved + k * entry_bytes_, 0, static_cast<size_t>(entry_bytes_));
      }
    }
    for (int which = 0; which < NumCompressors(l); ++which) {
      const auto [m, width] = CompressorShape(*config_, i, which);
      l.undo[which].Begin(l.state[which], m, width, pos0, max_tokens);
    }
  }
  return Status::Ok();
}

void V4SequenceCache::EndSpeculation() {
  mark_.End();
  for (Layer& l : layers_) {
    for (int which = 0; which < NumCompressors(l); ++which) l.undo[which].End(l.state[which]);
  }
}

Status V4SequenceCache::RollbackTo(int64_t n) {
  DSV4_RETURN_IF_ERROR(mark_.CheckRollback(num_tokens_, n));
  const int64_t pos0 = mark_.pos(), fed = num_tokens_, W = config_->sliding_window;
  if (n == 0) {  // a sequence that saw nothing holds nothing
    Release();
    return Status::Ok();
  }
  EndSpeculation();
  const ComponentLayout* ring = manager_->layout().Find(Component::kSwaWindow);
  for (int64_t i = 0; i < static_cast<int64_t>(layers_.size()); ++i) {
    Layer& l = layers_[i];
    auto table = [&](Component c) { return &l.pages[static_cast<size_t>(c)]; };
    TruncateTable(manager_, Component::kSwaWindow, table(Component::kSwaWindow), n, 0);
    if (l.kind == LayerKind::kCsa) {
      l.num_entries = TruncateTable(manager_, Component::kCsaEntries,
                                    table(Component::kCsaEntries), n, l.num_entries);
      l.num_keys = TruncateTable(manager_, Component::kCsaIndexerKeys,
                                 table(Component::kCsaIndexerKeys), n, l.num_keys);
    } else if (l.kind == LayerKind::kHca) {
      l.num_entries = TruncateTable(manager_, Component::kHcaEntries,
                                    table(Component::kHcaEntries), n, l.num_entries);
    }
    if (!manager_->backing()) continue;
    // Positions [n, fed) wrote ring slots that no position before n overwrote since the mark
    // (max_tokens <= window): put back what they held then, in the pages n still needs.
    const int64_t held = static_cast<int64_t>(table(Component::kSwaWindow)->size());
    for (int64_t pos = n; pos < fed; ++pos) {
      if ((pos % W) / ring->entries_per_page >= held) continue;
      std::memcpy(WindowRow(i, pos), l.saved_ring.data() + (pos - pos0) * entry_bytes_,
                  static_cast<size_t>(entry_bytes_));
    }
    for (int which = 0; which < NumCompressors(l); ++which) {
      l.undo[which].RollBack(l.state[which], n, fed);
    }
  }
  num_tokens_ = reserved_ = n;
  return Status::Ok();
}


// ---- Prefix snapshots ----------------------------------------------------------------------

V4PrefixSnapshot::~V4PrefixSnapshot() {
  for (auto& layer : layers) {
    for (int c = 0; c < kNumComponents; ++c) {
      for (PageId id : layer.pages[c]) manager->pool(static_cast<Component>(c)).Release(id);
    }
  }
}

std::unique_ptr<PrefixSnapshot> V4SequenceCache::TakeSnapshot() {
  const int64_t p = num_tokens_;
  if (p <= 0 || p % 128 != 0 || !manager_->backing() || mark_.active()) return nullptr;
  const PageLayout& pl = manager_->layout();
  // Copies: the window ring and the CSA compressor state. Shares: the compressed pages.
  int64_t bytes = 0;
  for (const Layer& l : layers_) {
    bytes += static_cast<int64_t>(l.pages[static_cast<size_t>(Component::kSwaWindow)].size()) *
             pl.Find(Component::kSwaWindow)->page_bytes();
    if (l.kind == LayerKind::kCsa) bytes += pl.Find(Component::kCsaState)->page_bytes();
  }
  if (bytes > manager_->available_bytes()) return nullptr;
  auto snap = std::make_unique<V4PrefixSnapshot>();
  snap->manager = manager_;
  snap->num_tokens = p;
  snap->copied_bytes = bytes;
  snap->layers.resize(layers_.size());
  auto copy_pages = [&](const Layer& from, V4PrefixSnapshot::Layer& to, Component c) {
    BlockPool& pool = manager_->pool(c);
    for (PageId id : from.pages[static_cast<size_t>(c)]) {
      const PageId copy = *pool.Allocate();
      std::memcpy(pool.data(copy), pool.data(id), static_cast<size_t>(pool.page_bytes()));
      to.pages[static_cast<size_t>(c)].push_back(copy);
    }
  };
  auto share_pages = [&](const Layer& from, V4PrefixSnapshot::Layer& to, Component c) {
    for (PageId id : from.pages[static_cast<size_t>(c)]) {
      manager_->pool(c).AddRef(id);
      to.pages[static_cast<size_t>(c)].push_back(id);
    }
  };
  // Pages reserved ahead may hold a shared page that the next append writes into: forget the
  // reservation so the next Reserve checks every page it writes (and copies shared ones).
  reserved_ = num_tokens_;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Layer& l = layers_[i];
    V4PrefixSnapshot::Layer& s = snap->layers[i];
    s.num_entries = l.num_entries;
    s.num_keys = l.num_keys;
    copy_pages(l, s, Component::kSwaWindow);
    if (l.kind == LayerKind::kCsa) {
      // Only the shared pages that hold entries before p (reserved-ahead pages stay private).
      copy_pages(l, s, Component::kCsaState);
      for (Component c : {Component::kCsaEntries, Component::kCsaIndexerKeys}) {
        const int64_t used = pl.PagesAt(c, p);
        Layer trimmed;
        trimmed.pages[static_cast<size_t>(c)].assign(
            l.pages[static_cast<size_t>(c)].begin(), l.pages[static_cast<size_t>(c)].begin() + used);
        share_pages(trimmed, s, c);
      }
    } else if (l.kind == LayerKind::kHca) {
      // At a multiple of 128 the HCA window is empty: its state is rebuilt before it is read.
      const int64_t used = pl.PagesAt(Component::kHcaEntries, p);
      Layer trimmed;
      trimmed.pages[static_cast<size_t>(Component::kHcaEntries)].assign(
          l.pages[static_cast<size_t>(Component::kHcaEntries)].begin(),
          l.pages[static_cast<size_t>(Component::kHcaEntries)].begin() + used);
      share_pages(trimmed, s, Component::kHcaEntries);
    }
  }
  return snap;
}

Status V4SequenceCache::RestoreSnapshot(const PrefixSnapshot& base) {
  const auto& snap = static_cast<const V4PrefixSnapshot&>(base);
  EndSpeculation();
  DSV4_CHECK(reserved_ == 0 && snap.manager == manager_ && snap.layers.size() == layers_.size());
  const PageLayout& pl = manager_->layout();
  // Private copies of the ring and the compressor state; the compressed pages are shared.
  int64_t bytes = snap.copied_bytes;
  for (const Layer& l : layers_) {
    if (l.kind == LayerKind::kHca) bytes += pl.Find(Component::kHcaState)->page_bytes();
  }
  if (bytes > manager_->available_bytes()) {
    return Status::ResourceExhausted("no KV memory to restore a cached prefix");
  }
  for (size_t i = 0; i < layers_.size(); ++i) {
    Layer& l = layers_[i];
    const V4PrefixSnapshot::Layer& s = snap.layers[i];
    for (int ci = 0; ci < kNumComponents; ++ci) {
      if (s.pages[ci].empty()) continue;
      const Component c = static_cast<Component>(ci);
      BlockPool& pool = manager_->pool(c);
      for (PageId id : s.pages[ci]) {
        if (c == Component::kSwaWindow || c == Component::kCsaState) {
          const PageId copy = *pool.Allocate();
          std::memcpy(pool.data(copy), pool.data(id), static_cast<size_t>(pool.page_bytes()));
          l.pages[ci].push_back(copy);
        } else {
          pool.AddRef(id);
          l.pages[ci].push_back(id);
        }
      }
    }
    l.num_entries = s.num_entries;
    l.num_keys = s.num_keys;
    if (l.kind == LayerKind::kHca) {
      l.pages[static_cast<size_t>(Component::kHcaState)].push_back(
          *manager_->pool(Component::kHcaState).Allocate());
    }
    if (l.kind != LayerKind::kSwa) BindState(l, static_cast<int64_t>(i), l.kind == LayerKind::kHca);
  }
  num_tokens_ = reserved_ = snap.num_tokens;
  return Status::Ok();
}

}  // namespace dsv4::kv

// ---- Snapshot images (the disk tier) --------------------------------------------------------

namespace dsv4::kv {

bool V4PrefixSnapshot::ExportImage(SnapshotImage* image) const {
  if (!manager->backing()) return false;
  image->state.resize(layers.size() * 2 * sizeof(int64_t));
  image->pages.clear();
  for (size_t i = 0; i < layers.size(); ++i) {
    const int64_t counts[2] = {layers[i].num_entries, layers[i].num_keys};
    std::memcpy(image->state.data() + i * sizeof counts, counts, sizeof counts);
    for (int c = 0; c < kNumComponents; ++c) {
      if (layers[i].pages[c].empty()) continue;
      const auto component = static_cast<Component>(c);
      AppendPageImages(manager->pool(component), component, static_cast<uint32_t>(i),
                       layers[i].pages[c], image);
    }
  }
  return true;
}

Status V4SequenceCache::RestoreImage(const SnapshotImage& image) {
  EndSpeculation();
  DSV4_CHECK(reserved_ == 0);
  const PageLayout& pl = manager_->layout();
  const int64_t n = static_cast<int64_t>(image.tokens.size());
  auto bad = [&](const std::string& what) { return ImageMismatch(image, what); };
  DSV4_RETURN_IF_ERROR(CheckImageLength(image, manager_->backing()));
  if (image.state.size() != layers_.size() * 2 * sizeof(int64_t)) {
    return bad("state of " + std::to_string(image.state.size()) + " bytes, expected " +
               std::to_string(layers_.size() * 2 * sizeof(int64_t)));
  }
  // What a snapshot at n holds, in ExportImage's order: (layer, component, pages).
  struct Part {
    size_t layer;
    Component component;
    int64_t pages;
  };
  std::vector<Part> parts;
  int64_t bytes = 0;
  for (size_t i = 0; i < layers_.size(); ++i) {
    int64_t counts[2];
    std::memcpy(counts, image.state.data() + i * sizeof counts, sizeof counts);
    const LayerKind kind = layers_[i].kind;
    const int64_t want_entries = kind == LayerKind::kSwa ? 0 : pl.EntriesAt(EntryComponent(layers_[i]), n);
    const int64_t want_keys = kind == LayerKind::kCsa ? pl.EntriesAt(Component::kCsaIndexerKeys, n) : 0;
    if (counts[0] != want_entries || counts[1] != want_keys) {
      return bad("layer " + std::to_string(i) + " has " + std::to_string(counts[0]) +
                 " entries and " + std::to_string(counts[1]) + " keys, expected " +
                 std::to_string(want_entries) + " and " + std::to_string(want_keys));
    }
    std::vector<Component> cs = {Component::kSwaWindow};
    if (kind == LayerKind::kCsa) {
      cs = {Component::kSwaWindow, Component::kCsaEntries, Component::kCsaIndexerKeys,
            Component::kCsaState};
    } else if (kind == LayerKind::kHca) {
      cs = {Component::kSwaWindow, Component::kHcaEntries};
      bytes += pl.Find(Component::kHcaState)->page_bytes();  // rebuilt, not stored
    }
    for (Component c : cs) {
      const int64_t pages = pl.PagesAt(c, n);
      if (pages > 0) parts.push_back({i, c, pages});
      bytes += pages * pl.Find(c)->page_bytes();
    }
  }
  size_t next = 0;
  for (const Part& part : parts) {
    for (int64_t k = 0; k < part.pages; ++k, ++next) {
      DSV4_RETURN_IF_ERROR(CheckImagePage(image, next, part.layer, part.component,
                                          pl.Find(part.component)->page_bytes()));
    }
  }
  if (next != image.pages.size()) return bad("it has too many pages");
  if (bytes > manager_->available_bytes()) {
    return Status::ResourceExhausted("no KV memory to restore a cached prefix from disk");
  }
  next = 0;
  for (const Part& part : parts) {
    BlockPool& pool = manager_->pool(part.component);
    auto& table = layers_[part.layer].pages[static_cast<size_t>(part.component)];
    for (int64_t k = 0; k < part.pages; ++k, ++next) {
      const PageId id = *pool.Allocate();
      std::memcpy(pool.data(id), image.pages[next].bytes.data(), image.pages[next].bytes.size());
      table.push_back(id);
    }
  }
  for (size_t i = 0; i < layers_.size(); ++i) {
    Layer& l = layers_[i];
    int64_t counts[2];
    std::memcpy(counts, image.state.data() + i * sizeof counts, sizeof counts);
    l.num_entries = counts[0];
    l.num_keys = counts[1];
    if (l.kind == LayerKind::kHca) {
      l.pages[static_cast<size_t>(Component::kHcaState)].push_back(
          *manager_->pool(Component::kHcaState).Allocate());
    }
    if (l.kind != LayerKind::kSwa) BindState(l, static_cast<int64_t>(i), l.kind == LayerKind::kHca);
  }
  num_tokens_ = reserved_ = n;
  return Status::Ok();
}

}  // namespace dsv4::kv
