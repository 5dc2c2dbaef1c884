// Token sampling: greedy, temperature, top-k, top-p. The random draw for a token depends only
// on the request's seed and the token's position, so a sequence that is preempted and
// recomputed samples exactly the same tokens again.
#pragma once

#include <cstdint>
#include <span>

#include "dsv4/sampling.h"

namespace dsv4::sample {

using SamplingParams = ::dsv4::SamplingParams;  // public: include/dsv4/sampling.h

// The token for position `position` from FP32 logits [vocab].
int32_t SampleToken(std::span<const float> logits, const SamplingParams& p, int64_t position);

}  // namespace dsv4::sample
