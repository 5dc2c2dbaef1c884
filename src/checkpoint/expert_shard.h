// What each rank holds under expert parallelism, in checkpoint bytes: every tensor but the
// routed experts' is replicated; a routed expert's tensors are held by the rank the
// dist::ExpertMap names. `dsv4 inspect --ep N` reports it, each rank prints its own share at
// startup, and the loader reads exactly these tensors (tests/models/v4 and v32 check it).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "checkpoint/config.h"
#include "checkpoint/tensor.h"
#include "dist/expert_map.h"

namespace dsv4::checkpoint {

// The routed expert a tensor belongs to ("layers.3.ffn.experts.17.w1.scale",
// "mtp.0.ffn.experts.17.w2.weight" and V3.2's "model.layers.3.mlp.experts.17.up_proj.weight"
// -> 17), nullopt for every other tensor (shared experts, the router's gate included).
std::optional<int64_t> RoutedExpertOf(std::string_view tensor_name);

// One stored tensor: its name and size.
struct StoredTensor {
  std::string name;
  int64_t bytes = 0;
};
// Whether a tensor belongs to the drafter of a checkpoint of `c`: V4's `mtp.*`, V3.2's MTP
// layer (`model.layers.L.*` for L >= num_hidden_layers).
bool IsDrafterTensor(const ModelConfig& c, std::string_view tensor_name);
// The tensors of `source` (a checkpoint of `c`), optionally without the drafter's.
std::vector<StoredTensor> StoredTensors(const TensorSource& source, const ModelConfig& c,
                                        bool include_drafter);
// The tensors a checkpoint of `c` stores in its native formats (ListTensors), e.g. for a
// preset without weights; without the drafter's unless include_drafter.
std::vector<StoredTensor> NativeTensors(const ModelConfig& c, bool include_drafter);

struct ShardBytes {
  int64_t replicated = 0;       // every tensor that is not a routed expert's
  std::vector<int64_t> experts; // [ranks]: routed-expert bytes each rank holds
  int64_t total(int rank) const { return replicated + experts[static_cast<size_t>(rank)]; }
};
ShardBytes CountShardBytes(const std::vector<StoredTensor>& tensors, const dist::ExpertMap& map);

}  // namespace dsv4::checkpoint
