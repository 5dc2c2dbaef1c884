#include "kv/v4_cache.h"

#include <algorithm>
#include <limits>
#include <string>

#include "core/check.h"

namespace dsv4::kv {

using model::LayerKind;

int64_t CompressorState::FloatsFor(int64_t m, int64_t c) {
  const int64_t kappa = m == 4 ? 2 : 1;
  return 2 * (kappa * m) * (kappa * c);
}

void CompressorState::Bind(int64_t m, int64_t c, float* storage) {
  ratio = m;
  width = c;
  kappa = m == 4 ? 2 : 1;
  kv = storage;
  score = storage + rows() * row_width();
}

void CompressorState::Reset() {
  const int64_t n = rows() * row_width();
  std::fill(kv, kv + n, 0.0f);
  std::fill(score, score + n, -std::numeric_limits<float>::infinity());
}

V4SequenceCache::V4SequenceCache(const model::ModelConfig& c)
    : V4SequenceCache(c, nullptr) {}

V4SequenceCache::V4SequenceCache(const model::ModelConfig& c, KvManager* manager)
    : config_(&c), manager_(manager) {
  DSV4_CHECK(c.arch == model::Arch::kV4);
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

bool V4SequenceCache::Grow(Layer& l, Component c, int64_t pages, std::vector<Grown>* got) {
  auto& table = l.pages[static_cast<size_t>(c)];
  while (static_cast<int64_t>(table.size()) < pages) {
    std::optional<PageId> id = manager_->pool(c).Allocate();
    if (!id) return false;
    table.push_back(*id);
    got->push_back({&table, c});
  }
  return true;
}

Status V4SequenceCache::Reserve(int64_t n) {
  if (n <= reserved_) return Status::Ok();
  const PageLayout& pl = manager_->layout();
  std::vector<Grown> got;
  bool ok = true;
  for (int64_t i = 0; ok && i < static_cast<int64_t>(layers_.size()); ++i) {
    Layer& l = layers_[i];
    ok = Grow(l, Component::kSwaWindow, pl.PagesAt(Component::kSwaWindow, n), &got);
    if (ok && l.kind == LayerKind::kCsa) {
      ok = Grow(l, Component::kCsaEntries, pl.PagesAt(Component::kCsaEntries, n), &got) &&
           Grow(l, Component::kCsaIndexerKeys, pl.PagesAt(Component::kCsaIndexerKeys, n), &got) &&
           Grow(l, Component::kCsaState, pl.PagesAt(Component::kCsaState, n), &got);
    } else if (ok && l.kind == LayerKind::kHca) {
      ok = Grow(l, Component::kHcaEntries, pl.PagesAt(Component::kHcaEntries, n), &got) &&
           Grow(l, Component::kHcaState, pl.PagesAt(Component::kHcaState, n), &got);
    }
  }
  if (!ok) {  // all or nothing: give back what this call took, newest first
    for (auto it = got.rbegin(); it != got.rend(); ++it) {
      manager_->pool(it->component).Release(it->table->back());
      it->table->pop_back();
    }
    return Status::ResourceExhausted("KV budget of " + std::to_string(manager_->budget_bytes()) +
                                     " bytes cannot hold " + std::to_string(n) +
                                     " tokens of this sequence (" +
                                     std::to_string(manager_->available_bytes()) + " bytes free)");
  }
  for (int64_t i = 0; i < static_cast<int64_t>(layers_.size()); ++i) {
    if (layers_[i].kind != LayerKind::kSwa && layers_[i].state[0].kv == nullptr) BindState(layers_[i], i);
  }
  reserved_ = n;
  return Status::Ok();
}

void V4SequenceCache::BindState(Layer& l, int64_t layer) {
  const Component c = l.kind == LayerKind::kCsa ? Component::kCsaState : Component::kHcaState;
  auto& table = l.pages[static_cast<size_t>(c)];
  if (table.empty() || !manager_->backing()) return;
  float* storage = reinterpret_cast<float*>(manager_->pool(c).data(table[0]));
  const int64_t m = config_->ratio(layer);
  l.state[0].Bind(m, config_->head_dim, storage);
  l.state[0].Reset();
  if (l.kind == LayerKind::kCsa) {
    l.state[1].Bind(4, config_->index_head_dim,
                    storage + CompressorState::FloatsFor(m, config_->head_dim));
    l.state[1].Reset();
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
  KvFootprint fp;
  fp.num_tokens = num_tokens_;
  for (const ComponentLayout& cl : manager_->layout().components()) {
    int64_t pages = 0;
    for (const Layer& l : layers_) pages += static_cast<int64_t>(l.pages[static_cast<size_t>(cl.component)].size());
    if (pages > 0) {
      fp.components.push_back({std::string(ComponentName(cl.component)), 1, cl.page_bytes(), pages, cl.fixed});
    }
  }
  return fp;
}

}  // namespace dsv4::kv
