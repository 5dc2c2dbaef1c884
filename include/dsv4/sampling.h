// How a request picks each next token (public API; src/sample implements it).
#pragma once

#include <cstdint>

namespace dsv4 {

struct SamplingParams {
  float temperature = 0.0f;  // 0: greedy (argmax, ties to the lowest id)
  int64_t top_k = 0;         // 0: no limit
  float top_p = 1.0f;        // nucleus mass in (0, 1]
  uint64_t seed = 0;         // with the token's position, the only source of randomness
};

}  // namespace dsv4
