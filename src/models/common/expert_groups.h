// A chunk's (row, routed expert) pairs grouped by expert, so that each expert's weights are
// read once per chunk (both MoE layers, spec §10 and §14.4).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace dsv4::models {

// Pairs of expert e: [start[e], start[e + 1]), rows ascending within each expert (the
// order the rows would be visited one token at a time).
struct ExpertGroups {
  std::vector<int64_t> start;  // [num_experts + 1]
  std::vector<int64_t> rows;   // [n * k]: the row of each pair
  std::vector<float> weights;  // [n * k]: its routing weight

  // Regroups expert_of and weight_of, both [n, k] (row t chose experts expert_of[t*k ..]
  // with those weights), by a counting sort; every id must be in [0, num_experts). Reuses
  // the vectors' capacity: once grown, allocates nothing.
  void Build(std::span<const int32_t> expert_of, std::span<const float> weight_of, int64_t k,
             int64_t num_experts);

  int64_t size(int64_t e) const { return start[e + 1] - start[e]; }

 private:
  std::vector<int64_t> next_;  // Build's insertion cursor per expert (kept: no allocation)
};

}  // namespace dsv4::models
