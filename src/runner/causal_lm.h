// The architecture-independent face of a model: create per-sequence state, feed tokens,
// get logits. DeepSeek-V4 and DeepSeek-V3.2 implement it; the CLI, the engine and the
// benches only see this interface.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "kv/layout.h"
#include "model/config.h"
#include "model/logits_mode.h"
#include "model/tensor.h"

namespace dsv4::runner {

using model::LogitsMode;

// Everything a sequence carries between calls (its KV cache and streaming state).
class SequenceState {
 public:
  virtual ~SequenceState() = default;
  // Positions [0, num_tokens()) have been processed.
  virtual int64_t num_tokens() const = 0;
  // Bytes held now, by component.
  virtual kv::KvFootprint Usage() const = 0;
};

class CausalLm {
 public:
  virtual ~CausalLm() = default;
  virtual const model::ModelConfig& config() const = 0;
  virtual std::unique_ptr<SequenceState> NewSequence() const = 0;
  // Feeds `tokens` at positions state.num_tokens().. (any chunk size; bit-identical logits
  // for any chunking). `state` must come from this model's NewSequence. InvalidArgument for
  // a token outside the vocabulary, OutOfRange past max_position_embeddings; the state is
  // unchanged on error.
  virtual Status Forward(ThreadPool& pool, SequenceState& state, std::span<const int32_t> tokens,
                         LogitsMode mode, std::vector<float>* logits) const = 0;
};

// The model for `c.arch`. `source` must outlive it.
Result<std::unique_ptr<CausalLm>> CreateCausalLm(const model::ModelConfig& c,
                                                 const model::TensorSource& source);

}  // namespace dsv4::runner
