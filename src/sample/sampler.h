// Token sampling: greedy, temperature, top-k, top-p. The random draw for a token depends only
// on the request's seed and the token's position, so a sequence that is preempted and
// recomputed samples exactly the same tokens again.
#pragma once

#include <cstdint>
#include <span>

namespace dsv4::sample {

struct SamplingParams {
  float temperature = 0.0f;  // 0: greedy (argmax, ties to the lowest id)
  int64_t top_k = 0;         // 0: no limit
  float top_p = 1.0f;        // nucleus mass in (0, 1]
  uint64_t seed = 0;
};

// The token for position `position` from FP32 logits [vocab].
int32_t SampleToken(std::span<const float> logits, const SamplingParams& p, int64_t position);

}  // namespace dsv4::sample
