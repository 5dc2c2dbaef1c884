#include "checkpoint/expert_shard.h"

#include <charconv>

#include "checkpoint/checkpoint_layout.h"

namespace dsv4::checkpoint {

std::optional<int64_t> RoutedExpertOf(std::string_view name) {
  // V4's "layers.3.ffn.experts.17.", V3.2's "model.layers.3.mlp.experts.17.".
  std::string_view rest;
  for (std::string_view marker : {std::string_view(".ffn.experts."), std::string_view(".mlp.experts.")}) {
    const size_t at = name.find(marker);
    if (at != std::string_view::npos) {
      rest = name.substr(at + marker.size());
      break;
    }
  }
  if (rest.empty()) return std::nullopt;
  int64_t e = -1;
  const auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), e);
  if (ec != std::errc() || end == rest.data() || end == rest.data() + rest.size() || *end != '.') {
    return std::nullopt;
  }
  return e;
}

bool IsDrafterTensor(const ModelConfig& c, std::string_view name) {
  if (c.arch == Arch::kV4) return name.rfind("mtp.", 0) == 0;
  constexpr std::string_view kLayers = "model.layers.";
  if (name.rfind(kLayers, 0) != 0) return false;
  const std::string_view rest = name.substr(kLayers.size());
  int64_t layer = -1;
  const auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), layer);
  return ec == std::errc() && end != rest.data() && layer >= c.num_hidden_layers;
}

std::vector<StoredTensor> StoredTensors(const TensorSource& source, const ModelConfig& c,
                                        bool include_drafter) {
  std::vector<StoredTensor> out;
  for (const std::string& n : source.names()) {
    if (!include_drafter && IsDrafterTensor(c, n)) continue;
    Result<TensorView> v = source.Get(n);
    if (v.ok()) out.push_back({n, static_cast<int64_t>(v->bytes.size())});
  }
  return out;
}

std::vector<StoredTensor> NativeTensors(const ModelConfig& c, bool include_drafter) {
  std::vector<StoredTensor> out;
  for (const TensorSpec& t : ListTensors(c, include_drafter)) {
    if (t.optional) continue;
    out.push_back({t.name, NumElements(t.shape) * static_cast<int64_t>(DTypeSize(t.dtype))});
  }
  return out;
}

ShardBytes CountShardBytes(const std::vector<StoredTensor>& tensors, const dist::ExpertMap& map) {
  ShardBytes s;
  s.experts.assign(static_cast<size_t>(map.num_ranks()), 0);
  for (const StoredTensor& t : tensors) {
    const std::optional<int64_t> e = RoutedExpertOf(t.name);
    if (e && *e < map.num_experts()) {
      s.experts[static_cast<size_t>(map.owner(*e))] += t.bytes;
    } else {
      s.replicated += t.bytes;
    }
  }
  return s;
}

}  // namespace dsv4::checkpoint
