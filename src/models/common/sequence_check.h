// The input checks both forward passes make before touching a cache.
#pragma once

#include <cstdint>
#include <span>

#include "checkpoint/config.h"
#include "core/status.h"

namespace dsv4::models {

// `tokens` appended at positions pos0, pos0 + 1, ...: InvalidArgument naming the first token
// outside [0, vocab_size) and its position, else OutOfRange when the sequence would pass
// max_position_embeddings; Ok otherwise.
Status CheckSequence(const checkpoint::ModelConfig& c, int64_t pos0,
                     std::span<const int32_t> tokens);

}  // namespace dsv4::models
