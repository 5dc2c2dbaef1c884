// Token sampling: greedy, temperature, top-k, top-p. The random draw for a token depends only
// on the request's seed and the token's position, so a sequence that is preempted and
// recomputed samples exactly the same tokens again.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "dsv4/sampling.h"

namespace dsv4::sample {

using SamplingParams = ::dsv4::SamplingParams;  // public: include/dsv4/sampling.h

// Reusable buffers of SampleToken (grow-only; contents never change the result).
struct SampleScratch {
  std::vector<int32_t> ids;   // [vocab]: candidates by descending logit
  std::vector<double> prob;   // [top_k]: their unnormalised probabilities
};

// The token for position `position` from FP32 logits [vocab]. `scratch` (one per calling
// thread) is reused: with one kept across calls, a warm call allocates nothing.
int32_t SampleToken(std::span<const float> logits, const SamplingParams& p, int64_t position,
                    SampleScratch* scratch);
// The same with fresh buffers.
int32_t SampleToken(std::span<const float> logits, const SamplingParams& p, int64_t position);

}  // namespace dsv4::sample
