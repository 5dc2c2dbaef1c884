// Parallel layout of one serving group (capacity.md §4, §6.3): attention tensor parallelism
// (tp), attention data parallelism (dp, "DP attention": each request and its whole KV cache
// live on one rank) and expert parallelism (ep) over the tp x dp GPUs of the group.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"
#include "checkpoint/config.h"

namespace dsv4::plan {

struct ParallelLayout {
  int64_t tp = 1;  // attention TP: non-expert weights split tp ways; MLA/MQA KV is replicated
  int64_t dp = 1;  // attention DP ranks of tp GPUs each
  int64_t ep = 1;  // expert parallel degree; routed experts are split ep ways and each expert
                   // gpus()/ep ways (expert TP), so every GPU holds 1/gpus() of them
  int64_t redundant_experts = 0;  // EPLB replicas added to the routed experts (spread over ep)

  int64_t gpus() const { return tp * dp; }
  // "dep16", "tp8", or "tp2dp8ep16".
  std::string Name() const;
};

// Parses a shorthand: a sequence of <kind><N> tokens with kind in {dep, tp, dp, ep}, e.g.
// "dep16" (= dp16 ep16), "dep8", "tp8", "tp2dp8". EP defaults to tp x dp.
Result<ParallelLayout> ParseLayout(std::string_view s);
// Builds a layout from explicit degrees; `shorthand` and any of tp/dp/ep conflict.
Result<ParallelLayout> ResolveLayout(const std::optional<std::string>& shorthand,
                                     std::optional<int64_t> tp, std::optional<int64_t> dp,
                                     std::optional<int64_t> ep, int64_t redundant_experts);
// Checks the layout against a model: ep divides both the group and the routed experts
// (+ redundant), tp divides the attention heads. `model_label` names the model in messages.
Status ValidateLayout(const ParallelLayout& l, const checkpoint::ModelConfig& c,
                      std::string_view model_label);

}  // namespace dsv4::plan
