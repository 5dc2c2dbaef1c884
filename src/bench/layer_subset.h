// A few layers of a real-dimension model, chosen to keep its layer-type mix, and how to scale
// what they measure back to the whole stack. A 1M-token V3.2 cache of 61 layers needs ~50 GB
// and a real V4-Pro attention stack ~27 GB of weights; the benches allocate and run a subset
// for real and multiply per layer type by the real layer counts (every layer of one type holds
// the same bytes and does the same work at a given position).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "checkpoint/config.h"

namespace dsv4::bench {

// The layers of one type: V4 SWA / CSA / HCA, or V3.2's single MLA+DSA type.
struct LayerGroup {
  std::string name;                                // "SWA", "CSA", "HCA", "MLA+DSA"
  checkpoint::LayerKind kind = checkpoint::LayerKind::kSwa;  // V4 only
  int64_t full_count = 0;                          // layers of this type in the full stack
  std::vector<int64_t> subset_layers;              // their stand-ins in the subset config
};

struct LayerSubset {
  checkpoint::ModelConfig config;  // same dimensions, num_hidden_layers = the subset's size
  std::vector<LayerGroup> groups;
  bool scaled() const;  // false when the subset is the whole stack
  // "2 layers (1 CSA, 1 HCA) of 61 (30 CSA + 31 HCA)".
  std::string Describe(int64_t full_layers) const;
  // Which group subset layer `layer` belongs to.
  const LayerGroup& GroupOf(int64_t layer) const;
};

// `num_layers` <= 0: one layer per type present. Otherwise that many layers, at least one per
// type, the rest shared out in proportion to the real counts (capped at the whole stack).
// Groups (and V4 subset layers) come in type order SWA, CSA, HCA; the whole stack keeps its
// real layer order.
// InvalidArgument when num_layers is smaller than the number of types present.
Result<LayerSubset> SelectLayers(const checkpoint::ModelConfig& full, int64_t num_layers);

// A one-layer V4 config of `full`'s dimensions whose layer 0 is of type `kind` (its compress
// ratio; not a hash-routed layer: the bench measures the routed MoE most layers run; the MTP
// entry and no DSpark blocks). The MTP layer counts: a type only it has is still built.
// NotFound when neither a main layer nor the MTP layer is of that type.
Result<checkpoint::ModelConfig> SingleLayerConfig(const checkpoint::ModelConfig& full,
                                                  checkpoint::LayerKind kind);

}  // namespace dsv4::bench
