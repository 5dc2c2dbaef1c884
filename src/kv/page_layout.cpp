#include "kv/page_layout.h"

#include <algorithm>
#include <string>

#include "core/check.h"

namespace dsv4::kv {

using checkpoint::LayerKind;

std::string_view ComponentName(Component c) {
  switch (c) {
    case Component::kSwaWindow: return "swa_window";
    case Component::kCsaEntries: return "csa_entries";
    case Component::kCsaIndexerKeys: return "csa_indexer_keys";
    case Component::kHcaEntries: return "hca_entries";
    case Component::kCsaState: return "csa_compressor_state";
    case Component::kHcaState: return "hca_compressor_state";
    case Component::kMlaLatent: return "mla_latent";
    case Component::kMlaIndexerKeys: return "indexer_keys";
  }
  return "?";
}

PageLayout::PageLayout(const checkpoint::ModelConfig& c, const KvFormats& f, int64_t entries_per_page) {
  DSV4_CHECK(entries_per_page > 0);
  auto add = [&](Component comp, int64_t layers, int64_t bytes, int64_t per_page, bool fixed) {
    if (layers > 0 && bytes > 0) components_.push_back({comp, layers, bytes, per_page, fixed});
  };
  if (c.arch == checkpoint::Arch::kV32) {
    add(Component::kMlaLatent, c.num_hidden_layers, MlaRecordBytes(c, f.mla), entries_per_page,
        false);
    add(Component::kMlaIndexerKeys, c.num_hidden_layers,
        IndexerKeyBytes(c.index_head_dim, f.indexer), entries_per_page, false);
    return;
  }
  window_ = c.sliding_window;
  int64_t window_page = 1;
  for (int64_t d = 1; d <= std::min<int64_t>(16, window_); ++d) {
    if (window_ % d == 0) window_page = d;
  }
  const int64_t csa = c.CountLayers(LayerKind::kCsa), hca = c.CountLayers(LayerKind::kHca);
  const int64_t entry = EntryBytes(c, f.entry);
  add(Component::kSwaWindow, c.num_hidden_layers, entry, window_page, true);
  add(Component::kCsaEntries, csa, entry, entries_per_page, false);
  add(Component::kCsaIndexerKeys, csa, IndexerKeyBytes(c.index_head_dim, f.indexer),
      entries_per_page, false);
  add(Component::kHcaEntries, hca, entry, entries_per_page, false);
  add(Component::kCsaState, csa, CompressorStateBytes(c, LayerKind::kCsa, f.compressor_state_bf16),
      1, true);
  add(Component::kHcaState, hca, CompressorStateBytes(c, LayerKind::kHca, f.compressor_state_bf16),
      1, true);
}

const ComponentLayout* PageLayout::Find(Component c) const {
  for (const auto& comp : components_) {
    if (comp.component == c) return &comp;
  }
  return nullptr;
}

int64_t PageLayout::EntriesAt(Component c, int64_t n) const {
  switch (c) {
    case Component::kSwaWindow: return std::min(n, window_);
    case Component::kCsaEntries:
    case Component::kCsaIndexerKeys: return n / 4;
    case Component::kHcaEntries: return n / 128;
    case Component::kCsaState:
    case Component::kHcaState: return n > 0 ? 1 : 0;
    case Component::kMlaLatent:
    case Component::kMlaIndexerKeys: return n;
  }
  return 0;
}

int64_t PageLayout::PagesAt(Component c, int64_t n) const {
  const ComponentLayout* l = Find(c);
  if (l == nullptr) return 0;
  return (EntriesAt(c, n) + l->entries_per_page - 1) / l->entries_per_page;
}

int64_t PageLayout::BytesAt(int64_t n) const {
  int64_t bytes = 0;
  for (const auto& l : components_) bytes += l.layers * PagesAt(l.component, n) * l.page_bytes();
  return bytes;
}

KvFootprint PagedFootprint(const PageLayout& layout, int64_t num_tokens,
                           const std::array<int64_t, kNumComponents>& pages) {
  KvFootprint fp;
  fp.num_tokens = num_tokens;
  for (const ComponentLayout& cl : layout.components()) {
    const int64_t n = pages[static_cast<size_t>(cl.component)];
    if (n > 0) {
      fp.components.push_back({std::string(ComponentName(cl.component)), 1, cl.page_bytes(), n,
                               cl.fixed});
    }
  }
  return fp;
}

}  // namespace dsv4::kv
