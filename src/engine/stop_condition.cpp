#include "engine/stop_condition.h"

#include <algorithm>

namespace dsv4::engine {

FinishReason StopAfter(const StopConditions& stop, int64_t eos_token_id, int32_t token,
                       int64_t num_generated) {
  const bool stop_token =
      !stop.ignore_eos &&
      (token == eos_token_id || std::find(stop.stop_token_ids.begin(), stop.stop_token_ids.end(),
                                          token) != stop.stop_token_ids.end());
  if (stop_token) return FinishReason::kStop;
  if (num_generated >= stop.max_new_tokens) return FinishReason::kLength;
  return FinishReason::kNone;
}

}  // namespace dsv4::engine
