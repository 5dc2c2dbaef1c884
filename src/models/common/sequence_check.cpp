#include "models/common/sequence_check.h"

#include <string>

namespace dsv4::models {

Status CheckSequence(const checkpoint::ModelConfig& c, int64_t pos0,
                     std::span<const int32_t> tokens) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  for (int64_t t = 0; t < n; ++t) {
    if (tokens[t] < 0 || tokens[t] >= c.vocab_size) {
      return Status::InvalidArgument("token " + std::to_string(tokens[t]) + " at position " +
                                     std::to_string(pos0 + t) + " is outside the vocabulary [0, " +
                                     std::to_string(c.vocab_size) + ")");
    }
  }
  if (pos0 + n > c.max_position_embeddings) {
    return Status::OutOfRange("sequence of " + std::to_string(pos0 + n) +
                              " tokens exceeds max_position_embeddings " +
                              std::to_string(c.max_position_embeddings));
  }
  return Status::Ok();
}

}  // namespace dsv4::models
