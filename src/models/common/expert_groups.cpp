#include "models/common/expert_groups.h"

#include "core/check.h"

namespace dsv4::models {

void ExpertGroups::Build(std::span<const int32_t> expert_of, std::span<const float> weight_of,
                         int64_t k, int64_t num_experts) {
  DSV4_CHECK(expert_of.size() == weight_of.size() && k > 0 &&
             static_cast<int64_t>(expert_of.size()) % k == 0);
  const int64_t pairs = static_cast<int64_t>(expert_of.size()), n = pairs / k;
  start.assign(static_cast<size_t>(num_experts + 1), 0);
  for (int32_t e : expert_of) {
    DSV4_DCHECK(e >= 0 && e < num_experts);
    ++start[e + 1];
  }
  for (int64_t e = 0; e < num_experts; ++e) start[e + 1] += start[e];
  rows.resize(static_cast<size_t>(pairs));
  weights.resize(static_cast<size_t>(pairs));
  next_.assign(start.begin(), start.end() - 1);
  std::vector<int64_t>& next = next_;
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t i = 0; i < k; ++i) {
      const int64_t at = next[expert_of[t * k + i]]++;
      rows[at] = t;
      weights[at] = weight_of[t * k + i];
    }
  }
}

}  // namespace dsv4::models
