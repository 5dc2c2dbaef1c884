// The DeepSeek-V3.2 forward pass (spec §14): embedding; per layer RMSNorm -> MLA with DSA ->
// residual add -> RMSNorm -> dense SwiGLU FFN (first first_k_dense_replace layers) or MoE ->
// residual add (pre-norm, one BF16 residual stream, the add fused into the next norm as in
// the reference); final norm; FP32 head.
// Immutable after Create; Forward may run for different caches from different threads, except
// under expert parallelism (LoadOptions::expert_parallel), where every step is a collective of
// all ranks: one forward at a time per process.
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
#include "dist/expert_parallel.h"
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
  // config's (ValidateModelConfig), LoadWeights', InvalidArgument for expert parallelism
  // without a communicator.
  static Result<std::unique_ptr<Model>> Create(const checkpoint::ModelConfig& c,
                                               const checkpoint::TensorSource& source,
                                               const checkpoint::LoadOptions& options = {});

  const checkpoint::ModelConfig& config() const { return config_; }
  // λ, the attention softmax scale (YaRN mscale² included when rope_scaling is present).
  float softmax_scale() const { return constants_.softmax_scale; }

  // One sequence's part of a batched step.
  struct BatchItem {
    kv::V32SequenceCache* cache = nullptr;
    std::span<const int32_t> tokens;  // fed at positions cache->num_tokens() ..
    LogitsMode mode = LogitsMode::kLast;
    std::vector<float>* logits = nullptr;  // FP32 [1 or n, vocab] per mode (resized)
    ForwardTrace* trace = nullptr;         // when set: replaced by the item's decisions
  };
  // Feeds several sequences at once (each a prefill chunk of any size or one decode token),
  // appends their MLA records and indexer keys to their caches and writes logits per item's
  // mode: every weight but attention's is read once for the whole batch (the attention runs
  // per sequence), and each token's logits are bit-identical to feeding it alone, in any
  // chunking. InvalidArgument for a token id outside the vocabulary, OutOfRange for a
  // position past max_position_embeddings, ResourceExhausted when a cache cannot reserve its
  // pages: every item is validated and its pages reserved before any cache is touched, so on
  // error none has advanced (a reservation made for an earlier item is kept; it is only
  // pages).
  Status ForwardBatch(ThreadPool& pool, std::span<const BatchItem> batch) const;

  // ForwardBatch of one sequence.
  Status Forward(ThreadPool& pool, kv::V32SequenceCache& cache, std::span<const int32_t> tokens,
                 LogitsMode mode, std::vector<float>* logits, ForwardTrace* trace = nullptr) const;

  // Expert parallelism, a rank with no sequences: joins every step the other ranks run with
  // zero rows (computing its experts for their rows) until one of them calls
  // dist::ExpertParallel::Finish. FailedPrecondition when not loaded with expert parallelism.
  Status FollowSteps(ThreadPool& pool) const;
  // Data-parallel serving, a rank with no rows in a step the ranks agreed to run
  // (dist::ExpertParallel::steps_agreed): joins its collectives with zero rows.
  // FailedPrecondition when not loaded with expert parallelism.
  Status JoinStep(ThreadPool& pool) const;

 private:
  struct Step;
  Model() = default;
  // The layer stack over `step`'s rows (none when joining a step).
  void RunLayers(ThreadPool& pool, Step& step) const;

  checkpoint::ModelConfig config_;
  std::shared_ptr<dist::ExpertParallel> ep_;  // null: one process holding every expert
  std::unique_ptr<ModelWeights> weights_;
  MlaConstants constants_;
};

}  // namespace dsv4::v32
