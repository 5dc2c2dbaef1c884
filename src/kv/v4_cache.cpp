#include "kv/v4_cache.h"

#include <algorithm>
#include <limits>

#include "core/check.h"

namespace dsv4::kv {

void CompressorState::Init(int64_t m, int64_t c) {
  ratio = m;
  width = c;
  kappa = m == 4 ? 2 : 1;
  kv.assign(static_cast<size_t>(kappa * m * kappa * c), 0.0f);
  score.assign(kv.size(), -std::numeric_limits<float>::infinity());
}

void CompressorState::Reset() {
  std::fill(kv.begin(), kv.end(), 0.0f);
  std::fill(score.begin(), score.end(), -std::numeric_limits<float>::infinity());
}

V4SequenceCache::V4SequenceCache(const model::ModelConfig& c) : config_(&c) {
  DSV4_CHECK(c.arch == model::Arch::kV4);
  const KvFormats f = DefaultKvFormats(c.arch);
  entry_bytes_ = EntryBytes(c, f.entry);
  key_bytes_ = IndexerKeyBytes(c.index_head_dim, f.indexer);
  layers_.resize(static_cast<size_t>(c.num_hidden_layers));
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    Layer& l = layers_[i];
    l.kind = c.layer_kind(i);
    if (l.kind != model::LayerKind::kSwa) l.state[0].Init(c.ratio(i), c.head_dim);
    if (l.kind == model::LayerKind::kCsa) l.state[1].Init(4, c.index_head_dim);
  }
}

void V4SequenceCache::Reset() {
  num_tokens_ = 0;
  for (Layer& l : layers_) {
    l.window.clear();
    l.entries.clear();
    l.keys.clear();
    for (CompressorState& s : l.state) s.Reset();
  }
}

uint8_t* V4SequenceCache::WindowRow(int64_t layer, int64_t pos) {
  // The ring grows to sliding_window rows as the first positions arrive.
  auto& w = layers_[layer].window;
  const size_t need = static_cast<size_t>(std::min(pos + 1, config_->sliding_window) * entry_bytes_);
  if (w.size() < need) w.resize(need);
  return layers_[layer].window.data() + (pos % config_->sliding_window) * entry_bytes_;
}
const uint8_t* V4SequenceCache::WindowRow(int64_t layer, int64_t pos) const {
  return layers_[layer].window.data() + (pos % config_->sliding_window) * entry_bytes_;
}

int64_t V4SequenceCache::NumEntries(int64_t layer) const {
  return static_cast<int64_t>(layers_[layer].entries.size()) / entry_bytes_;
}
const uint8_t* V4SequenceCache::Entry(int64_t layer, int64_t i) const {
  DSV4_DCHECK(i < NumEntries(layer));
  return layers_[layer].entries.data() + i * entry_bytes_;
}
uint8_t* V4SequenceCache::AppendEntry(int64_t layer) {
  auto& e = layers_[layer].entries;
  e.resize(e.size() + static_cast<size_t>(entry_bytes_));
  return e.data() + e.size() - entry_bytes_;
}

int64_t V4SequenceCache::NumIndexerKeys(int64_t layer) const {
  return static_cast<int64_t>(layers_[layer].keys.size()) / key_bytes_;
}
const uint8_t* V4SequenceCache::IndexerKey(int64_t layer, int64_t i) const {
  return layers_[layer].keys.data() + i * key_bytes_;
}
uint8_t* V4SequenceCache::AppendIndexerKey(int64_t layer) {
  auto& k = layers_[layer].keys;
  k.resize(k.size() + static_cast<size_t>(key_bytes_));
  return k.data() + k.size() - key_bytes_;
}

CompressorState& V4SequenceCache::State(int64_t layer, int which) {
  DSV4_DCHECK(!layers_[layer].state[which].kv.empty());
  return layers_[layer].state[which];
}

KvFootprint V4SequenceCache::Usage() const {
  KvFootprint fp;
  fp.num_tokens = num_tokens_;
  int64_t window = 0, csa = 0, keys = 0, hca = 0, csa_state = 0, hca_state = 0;
  for (const Layer& l : layers_) {
    window += static_cast<int64_t>(l.window.size());
    if (l.kind == model::LayerKind::kCsa) {
      csa += static_cast<int64_t>(l.entries.size());
      keys += static_cast<int64_t>(l.keys.size());
      csa_state += l.state[0].bytes() + l.state[1].bytes();
    } else if (l.kind == model::LayerKind::kHca) {
      hca += static_cast<int64_t>(l.entries.size());
      hca_state += l.state[0].bytes();
    }
  }
  // Expressed as one "layer" of summed bytes per component.
  auto add = [&](const char* name, int64_t bytes, bool fixed) {
    if (bytes > 0) fp.components.push_back({name, 1, bytes, 1, fixed});
  };
  add("swa_window", window, true);
  add("csa_entries", csa, false);
  add("csa_indexer_keys", keys, false);
  add("hca_entries", hca, false);
  add("csa_compressor_state", csa_state, true);
  add("hca_compressor_state", hca_state, true);
  return fp;
}

}  // namespace dsv4::kv
