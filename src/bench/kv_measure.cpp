#include "bench/kv_measure.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <map>

#include "bench/synthetic_kv.h"
#include "core/check.h"
#include "core/elapsed.h"
#include "kv/kv_manager.h"
#include "kv/layout.h"
#include "kv/page_layout.h"
#include "kv/v32_cache.h"
#include "kv/v4_cache.h"

namespace dsv4::bench {
namespace {

using checkpoint::LayerKind;
using checkpoint::ModelConfig;

// What the subset's cache holds of one component, and how many layers of the subset and of
// the full stack hold it. Every layer of one type holds the same bytes, so scaling by
// full / subset is exact (checked).
struct Tally {
  bool fixed = false;
  int64_t subset_layers = 0;
  int64_t full_layers = 0;
  int64_t entries_per_layer = 0;
  int64_t exact = 0;
  int64_t pages = 0;
  int64_t page_bytes = 0;
};

int64_t Scale(int64_t v, const Tally& t) {
  DSV4_CHECK(t.subset_layers > 0 && (v * t.full_layers) % t.subset_layers == 0);
  return v * t.full_layers / t.subset_layers;
}

std::vector<MeasuredComponent> ScaleTallies(const std::vector<std::pair<std::string, Tally>>& ts) {
  std::vector<MeasuredComponent> out;
  for (const auto& [name, t] : ts) {
    if (t.subset_layers == 0) continue;
    MeasuredComponent m;
    m.name = name;
    m.fixed = t.fixed;
    m.layers = t.full_layers;
    m.entries = t.entries_per_layer;
    m.exact_bytes = Scale(t.exact, t);
    m.entry_bytes = t.entries_per_layer > 0 ? t.exact / t.subset_layers / t.entries_per_layer : 0;
    m.pages = Scale(t.pages, t);
    m.page_bytes = Scale(t.page_bytes, t);
    if (m.exact_bytes > 0 || m.page_bytes > 0) out.push_back(std::move(m));
  }
  return out;
}

// Reads back what a V4 cache holds: exact bytes from its entry counters and bound compressor
// states, page bytes from its Usage().
KvPoint ReadV4(const ModelConfig& full, const LayerSubset& s, kv::V4SequenceCache& cache,
               const kv::KvManager& mgr) {
  const ModelConfig& c = s.config;
  std::vector<std::pair<std::string, Tally>> ts;
  auto tally = [&](kv::Component comp) -> Tally& {
    const std::string name(kv::ComponentName(comp));
    for (auto& [n, t] : ts) {
      if (n == name) return t;
    }
    return ts.emplace_back(name, Tally{}).second;
  };
  // Components in the page layout's order (window, CSA entries and keys, HCA, states).
  for (const kv::ComponentLayout& cl : mgr.layout().components()) tally(cl.component);
  const int64_t window_rows = std::min(cache.num_tokens(), c.sliding_window);
  const int64_t all = full.num_hidden_layers;
  const int64_t csa = full.CountLayers(LayerKind::kCsa), hca = full.CountLayers(LayerKind::kHca);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    // One layer's share of a component held by `full_layers` layers of the full stack.
    auto add = [&](kv::Component comp, int64_t full_layers, int64_t entries, int64_t bytes,
                   bool fixed) {
      Tally& t = tally(comp);
      t.fixed = fixed;
      ++t.subset_layers;
      t.full_layers = full_layers;
      t.entries_per_layer = entries;
      t.exact += bytes;
    };
    add(kv::Component::kSwaWindow, all, window_rows, window_rows * cache.entry_bytes(), true);
    const LayerKind kind = c.layer_kind(l);
    if (kind == LayerKind::kSwa) continue;
    auto state_bytes = [&](int which) {  // kv + score rows, FP32
      const kv::CompressorState& st = cache.State(l, which);
      return 2 * st.rows() * st.row_width() * static_cast<int64_t>(sizeof(float));
    };
    const int64_t entries = cache.NumEntries(l);
    if (kind == LayerKind::kCsa) {
      const int64_t keys = cache.NumIndexerKeys(l);
      add(kv::Component::kCsaEntries, csa, entries, entries * cache.entry_bytes(), false);
      add(kv::Component::kCsaIndexerKeys, csa, keys, keys * cache.indexer_key_bytes(), false);
      add(kv::Component::kCsaState, csa, 1, state_bytes(0) + state_bytes(1), true);
    } else {
      add(kv::Component::kHcaEntries, hca, entries, entries * cache.entry_bytes(), false);
      add(kv::Component::kHcaState, hca, 1, state_bytes(0), true);
    }
  }
  // Page bytes as the cache reports them (Usage: pages x page bytes per component).
  const kv::KvFootprint usage = cache.Usage();
  for (const kv::KvComponent& u : usage.components) {
    for (auto& [n, t] : ts) {
      if (n == u.name) {
        t.pages += u.entries_per_layer * u.layers;
        t.page_bytes += u.bytes();
      }
    }
  }
  KvPoint p;
  p.num_tokens = cache.num_tokens();
  p.components = ScaleTallies(ts);
  p.subset_usage_bytes = usage.total_bytes();
  p.subset_manager_bytes = mgr.Stats().used_bytes;
  return p;
}

KvPoint ReadV32(const ModelConfig& full, const LayerSubset& s, const kv::V32SequenceCache& cache,
                const kv::KvManager& mgr) {
  Tally rec, key;
  rec.full_layers = key.full_layers = full.num_hidden_layers;
  for (int64_t l = 0; l < s.config.num_hidden_layers; ++l) {
    ++rec.subset_layers;
    ++key.subset_layers;
    rec.entries_per_layer = cache.NumRecords(l);
    key.entries_per_layer = cache.NumIndexerKeys(l);
    rec.exact += cache.NumRecords(l) * cache.record_bytes();
    key.exact += cache.NumIndexerKeys(l) * cache.indexer_key_bytes();
  }
  // What the cache's pages hold (its Usage(), page-rounded like V4's).
  const kv::KvFootprint usage = cache.Usage();
  for (const kv::KvComponent& u : usage.components) {
    Tally& t = u.name == "mla_latent" ? rec : key;
    t.page_bytes += u.bytes();
  }
  KvPoint p;
  p.num_tokens = cache.num_tokens();
  p.components = ScaleTallies({{"mla_latent", rec}, {"indexer_keys", key}});
  p.subset_usage_bytes = usage.total_bytes();
  p.subset_manager_bytes = mgr.Stats().used_bytes;
  return p;
}

}  // namespace

int64_t KvPoint::exact_bytes() const {
  int64_t s = 0;
  for (const auto& c : components) s += c.exact_bytes;
  return s;
}
int64_t KvPoint::page_bytes() const {
  int64_t s = 0;
  for (const auto& c : components) s += c.page_bytes;
  return s;
}
int64_t KvPoint::growing_bytes() const {
  int64_t s = 0;
  for (const auto& c : components) s += c.fixed ? 0 : c.exact_bytes;
  return s;
}
int64_t KvPoint::window_bytes() const {
  int64_t s = 0;
  for (const auto& c : components) s += c.name == "swa_window" ? c.exact_bytes : 0;
  return s;
}
int64_t KvPoint::state_bytes() const { return exact_bytes() - growing_bytes() - window_bytes(); }

Result<KvReport> MeasureKv(const ModelConfig& c, std::string label, const KvMeasureOptions& o) {
  if (o.lengths.empty()) return Status::InvalidArgument("no lengths to measure");
  for (int64_t n : o.lengths) {
    if (n < 1) {
      return Status::InvalidArgument("length " + std::to_string(n) + " must be >= 1 token");
    }
  }
  KvReport r;
  r.label = std::move(label);
  r.config = c;
  DSV4_ASSIGN_OR_RETURN(r.subset, SelectLayers(c, o.num_layers));
  const ModelConfig& sc = r.subset.config;  // the caches point at it: r must not move meanwhile
  std::vector<int64_t> ascending = o.lengths;
  std::sort(ascending.begin(), ascending.end());
  ascending.erase(std::unique(ascending.begin(), ascending.end()), ascending.end());
  if (o.max_bytes > 0) {
    // V3.2's arrays grow by doubling: up to twice what they hold.
    const int64_t need =
        kv::PageLayout(sc, kv::DefaultKvFormats(sc.arch)).BytesAt(ascending.back()) *
        (c.arch == checkpoint::Arch::kV32 ? 2 : 1);
    if (need > o.max_bytes) {
      return Status::ResourceExhausted(
          r.label + ": " + std::to_string(sc.num_hidden_layers) +
          (sc.num_hidden_layers == 1 ? " layer at " : " layers at ") +
          std::to_string(ascending.back()) + " tokens would need ~" + std::to_string(need >> 20) +
          " MiB of cache, more than the " + std::to_string(o.max_bytes >> 20) +
          " MiB allowed here; use fewer --layers or shorter --lengths");
    }
  }
  std::map<int64_t, KvPoint> at;
  const EntryPool pool(sc, o.seed);
  // Both caches on a backed manager of their own layout, so page rounding shows.
  r.paged = true;
  kv::KvManager mgr(kv::PageLayout(sc, kv::DefaultKvFormats(sc.arch)),
                    std::numeric_limits<int64_t>::max() / 2, /*backing=*/true);
  if (c.arch == checkpoint::Arch::kV4) {
    kv::V4SequenceCache cache(sc, &mgr);
    for (int64_t n : ascending) {
      const auto t0 = std::chrono::steady_clock::now();
      DSV4_RETURN_IF_ERROR(FillV4Cache(sc, pool, n, o.seed, cache));
      const double secs = SecondsSince(t0);
      at[n] = ReadV4(c, r.subset, cache, mgr);
      at[n].fill_seconds = secs;
    }
  } else {
    kv::V32SequenceCache cache(sc, &mgr);
    for (int64_t n : ascending) {
      const auto t0 = std::chrono::steady_clock::now();
      DSV4_RETURN_IF_ERROR(FillV32Cache(sc, pool, n, cache));
      const double secs = SecondsSince(t0);
      at[n] = ReadV32(c, r.subset, cache, mgr);
      at[n].fill_seconds = secs;
    }
  }
  for (int64_t n : o.lengths) r.points.push_back(at[n]);
  return r;
}

}  // namespace dsv4::bench
