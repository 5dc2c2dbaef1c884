#include "bench/layer_subset.h"

#include <algorithm>

#include "core/check.h"

namespace dsv4::bench {

using checkpoint::Arch;
using checkpoint::LayerKind;
using checkpoint::ModelConfig;

bool LayerSubset::scaled() const {
  for (const LayerGroup& g : groups) {
    if (static_cast<int64_t>(g.subset_layers.size()) != g.full_count) return true;
  }
  return false;
}

std::string LayerSubset::Describe(int64_t full_layers) const {
  std::string ran, full;
  for (const LayerGroup& g : groups) {
    ran += (ran.empty() ? "" : ", ") + std::to_string(g.subset_layers.size()) + " " + g.name;
    full += (full.empty() ? "" : " + ") + std::to_string(g.full_count) + " " + g.name;
  }
  const int64_t n = config.num_hidden_layers;
  return std::to_string(n) + (n == 1 ? " layer (" : " layers (") + ran + ") of " +
         std::to_string(full_layers) + " (" + full + ")";
}

const LayerGroup& LayerSubset::GroupOf(int64_t layer) const {
  for (const LayerGroup& g : groups) {
    if (std::find(g.subset_layers.begin(), g.subset_layers.end(), layer) != g.subset_layers.end()) {
      return g;
    }
  }
  DSV4_CHECK_MSG(false, "layer " + std::to_string(layer) + " is in no group");
  return groups.front();
}

Result<LayerSubset> SelectLayers(const ModelConfig& full, int64_t num_layers) {
  const int64_t L = full.num_hidden_layers;
  LayerSubset s;
  s.config = full;
  if (full.arch == Arch::kV32) {
    const int64_t n = num_layers <= 0 ? 1 : std::min(num_layers, L);
    s.config.num_hidden_layers = n;
    s.config.first_k_dense_replace = std::min(full.first_k_dense_replace, n);
    LayerGroup g{"MLA+DSA", LayerKind::kSwa, L, {}};
    for (int64_t i = 0; i < n; ++i) g.subset_layers.push_back(i);
    s.groups.push_back(std::move(g));
    return s;
  }
  // V4: the types present, with their real layers.
  std::vector<std::vector<int64_t>> real;
  for (int64_t i = 0; i < L; ++i) {
    const LayerKind k = full.layer_kind(i);
    auto it = std::find_if(s.groups.begin(), s.groups.end(),
                           [&](const LayerGroup& g) { return g.kind == k; });
    if (it == s.groups.end()) {
      s.groups.push_back({std::string(checkpoint::LayerKindName(k)), k, 0, {}});
      real.emplace_back();
      it = s.groups.end() - 1;
    }
    ++it->full_count;
    real[static_cast<size_t>(it - s.groups.begin())].push_back(i);
  }
  // Tables read the same for every model: SWA, CSA, HCA.
  std::vector<size_t> order(s.groups.size());
  for (size_t g = 0; g < order.size(); ++g) order[g] = g;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return s.groups[a].kind < s.groups[b].kind; });
  std::vector<LayerGroup> sorted_groups;
  std::vector<std::vector<int64_t>> sorted_real;
  for (size_t g : order) {
    sorted_groups.push_back(s.groups[g]);
    sorted_real.push_back(real[g]);
  }
  s.groups = std::move(sorted_groups);
  real = std::move(sorted_real);
  const int64_t types = static_cast<int64_t>(s.groups.size());
  if (num_layers > 0 && num_layers < types) {
    return Status::InvalidArgument("--layers " + std::to_string(num_layers) + " cannot keep the " +
                                   std::to_string(types) +
                                   " layer types of this model; use >= " + std::to_string(types));
  }
  if (num_layers >= L) {  // the whole stack, in its real order
    for (size_t g = 0; g < s.groups.size(); ++g) s.groups[g].subset_layers = real[g];
    return s;
  }
  // One per type, then each further layer to the type with the most real layers per chosen one.
  std::vector<int64_t> take(s.groups.size(), 1);
  for (int64_t extra = std::max<int64_t>(0, num_layers - types); extra > 0; --extra) {
    size_t best = 0;
    for (size_t g = 1; g < take.size(); ++g) {
      if (s.groups[g].full_count * take[best] > s.groups[best].full_count * take[g]) best = g;
    }
    ++take[best];
  }
  std::vector<int64_t> ratios;
  for (size_t g = 0; g < s.groups.size(); ++g) {
    for (int64_t j = 0; j < take[g]; ++j) {
      s.groups[g].subset_layers.push_back(static_cast<int64_t>(ratios.size()));
      ratios.push_back(full.ratio(real[g].front()));
    }
  }
  const int64_t n = static_cast<int64_t>(ratios.size());
  ratios.push_back(full.ratio(L));  // the MTP layer's entry, as config.json carries it
  s.config.dspark = checkpoint::DsparkConfig{};  // DSpark blocks (and their targets) left out
  s.config.num_hidden_layers = n;
  s.config.compress_ratios = std::move(ratios);
  s.config.num_hash_layers = std::min(full.num_hash_layers, n);
  return s;
}

Result<ModelConfig> SingleLayerConfig(const ModelConfig& full, LayerKind kind) {
  DSV4_CHECK(full.arch == Arch::kV4);
  // The main layers, then the MTP layer's entry (V4-Pro's MTP block is SWA, its stack not).
  for (int64_t i = 0; i <= full.num_hidden_layers; ++i) {
    if (full.layer_kind(i) != kind) continue;
    ModelConfig c = full;
    c.num_hidden_layers = 1;
    c.compress_ratios = {full.ratio(i), full.ratio(full.num_hidden_layers)};
    c.num_hash_layers = 0;
    c.dspark = checkpoint::DsparkConfig{};
    return c;
  }
  return Status::NotFound("the model has no " + std::string(checkpoint::LayerKindName(kind)) +
                          " layer");
}

}  // namespace dsv4::bench
