// The DeepSeek-V3.2 forward pass (spec §14): embedding; per layer RMSNorm -> MLA with DSA ->
// residual add -> RMSNorm -> dense SwiGLU FFN (first first_k_dense_replace layers) or MoE ->
// residual add (pre-norm, one BF16 residual stream, the add fused into the next norm as in
// the reference); final norm; FP32 head.
// Immutable after Create; Forward may run for different caches from different threads.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "kv/v32_cache.h"
#include "checkpoint/config.h"
#include "models/common/logits_mode.h"
#include "checkpoint/tensor.h"
#include "models/v32/attention.h"
#include "models/v32/weights.h"

namespace dsv4::v32 {

using models::LogitsMode;

// The discrete decisions of one Forward call, per layer and token of the call (tests and
// debugging; nothing is recorded unless asked for).
struct ForwardTrace {
  struct Layer {
    std::vector<std::vector<int64_t>> selected;  // [n]: DSA top-k, ascending positions
    std::vector<std::vector<int32_t>> experts;   // [n]: routed experts, ascending; empty for
                                                 // dense-FFN layers
  };
  std::vector<Layer> layers;  // [num_hidden_layers]
};

class Model {
 public:
  // `source` must outlive the model (weights are views into it where possible). Errors: the
  // config's (ValidateModelConfig) and LoadWeights'.
  static Result<std::unique_ptr<Model>> Create(const checkpoint::ModelConfig& c,
                                               const checkpoint::TensorSource& source,
                                               const checkpoint::LoadOptions& options = {});

  const checkpoint::ModelConfig& config() const { return config_; }
  // λ, the attention softmax scale (YaRN mscale² included when rope_scaling is present).
  float softmax_scale() const { return constants_.softmax_scale; }

  // Feeds `tokens` at positions cache.num_tokens() .. + n - 1 (a prefill chunk of any size,
  // or one decode token), appends their MLA records and indexer keys to `cache`, and writes
  // logits per `mode` into `logits` (FP32 [rows, vocab], resized). InvalidArgument for a
  // token id outside the vocabulary, OutOfRange for a position past
  // max_position_embeddings; the cache is unchanged then. `trace`, when not null, is
  // replaced by the call's decisions.
  // The cache's pages for the new positions are reserved first (ResourceExhausted, the cache
  // unchanged, when its KV budget cannot cover them).
  Status Forward(ThreadPool& pool, kv::V32SequenceCache& cache, std::span<const int32_t> tokens,
                 LogitsMode mode, std::vector<float>* logits, ForwardTrace* trace = nullptr) const;

  // One sequence's part of a batched call.
  struct BatchItem {
    kv::V32SequenceCache* cache = nullptr;
    std::span<const int32_t> tokens;
    LogitsMode mode = LogitsMode::kLast;
    std::vector<float>* logits = nullptr;
  };
  // Several sequences (distinct caches) in one call, each exactly as Forward alone: every
  // item is validated and its pages reserved before any cache is touched, so on error none
  // has advanced (a reservation made for an earlier item is kept; it is only pages).
  Status ForwardBatch(ThreadPool& pool, std::span<const BatchItem> batch) const;

 private:
  Model() = default;
  checkpoint::ModelConfig config_;
  std::unique_ptr<ModelWeights> weights_;
  MlaConstants constants_;
};

}  // namespace dsv4::v32
