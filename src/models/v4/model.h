// The DeepSeek-V4 forward pass (spec §2): embedding, per layer HC_pre -> norm -> attention ->
// HC_post and HC_pre -> norm -> MoE -> HC_post, then HC_head, final norm and the FP32 head.
// Immutable after Create; Forward may run for different caches from different threads, except
// under expert parallelism (LoadOptions::expert_parallel), where every step is a collective of
// all ranks: one forward at a time per process.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/function_ref.h"
#include "core/status.h"
#include "core/thread_pool.h"
#include "kv/v4_cache.h"
#include "checkpoint/config.h"
#include "models/common/hidden_rows.h"
#include "models/common/logits_mode.h"
#include "checkpoint/tensor.h"
#include "kernels/cpu/workspace.h"
#include "models/v4/block.h"
#include "models/v4/rope.h"
#include "dist/expert_parallel.h"
#include "models/v4/weights.h"

namespace dsv4::v4 {

using models::LogitsMode;

class Model {
 public:
  // `source` must outlive the model (weights are views into it where possible).
  static Result<std::unique_ptr<Model>> Create(const checkpoint::ModelConfig& c,
                                               const checkpoint::TensorSource& source,
                                               const checkpoint::LoadOptions& options = {});

  const checkpoint::ModelConfig& config() const { return config_; }
  // The weights (the drafters share the embedding and the head) and the RoPE table of layer
  // `layer` < num_hidden_layers.
  const ModelWeights& weights() const { return *weights_; }
  const RopeTable& rope(int64_t layer) const { return rope_[static_cast<size_t>(layer)]; }
  // The expert parallelism it was loaded with (its drafters' MoE layers exchange over it
  // too); null: one process holding every expert.
  dist::ExpertParallel* expert_parallel() const { return ep_.get(); }

  // One sequence's part of a batched step.
  struct BatchItem {
    kv::V4SequenceCache* cache = nullptr;
    std::span<const int32_t> tokens;  // fed at positions cache->num_tokens() ..
    LogitsMode mode = LogitsMode::kLast;
    std::vector<float>* logits = nullptr;  // FP32 [1 or n, vocab] per mode (resized)
    // When set: the hidden rows `hidden_rows` of every fed token (resized): the final
    // residual streams before HC_head (the X_t the MTP module drafts from, spec §11.3),
    // BF16 [n, hc*D], or the target-layer means DSpark drafts from (§11.4), BF16 [n, T*D].
    // Null costs nothing.
    std::vector<BF16>* hidden = nullptr;
    models::HiddenRows hidden_rows = models::HiddenRows::kFinalStreams;
  };

  // The width of a row of `kind` hidden rows: hc*D, or T*D (T = dspark.target_layer_ids;
  // 0 when the config has none).
  int64_t hidden_width(models::HiddenRows kind) const;

  // Feeds several sequences at once (each a prefill chunk of any size or one decode token):
  // every weight is read once for the whole batch, and each token's logits are bit-identical
  // to feeding it alone. Appends the KV to each cache. InvalidArgument for a token id outside
  // the vocabulary, OutOfRange past max_position_embeddings, ResourceExhausted when a cache
  // cannot reserve its pages; no cache advances then (pages reserved ahead stay reserved).
  // `ws`: the call's scratch (its contents never change a result); null: a fresh one.
  Status ForwardBatch(ThreadPool& pool, std::span<const BatchItem> batch,
                      ForwardWorkspace* ws = nullptr) const;

  // Expert parallelism, a rank with no sequences: joins every step the other ranks run with
  // zero rows (computing its experts for their rows), and every drafter call they announce
  // through `join_draft_call` (dist::ExpertParallel::AwaitNext), until one of them calls
  // dist::ExpertParallel::Finish. FailedPrecondition when not loaded with expert parallelism.
  Status FollowSteps(ThreadPool& pool, ForwardWorkspace* ws,
                     FunctionRef<void()> join_draft_call) const;

  // Data-parallel serving, a rank with no rows in a step the ranks agreed to run
  // (dist::ExpertParallel::steps_agreed): joins its collectives with zero rows.
  // FailedPrecondition when not loaded with expert parallelism.
  Status JoinStep(ThreadPool& pool, ForwardWorkspace* ws = nullptr) const;

  // ForwardBatch of one sequence.
  Status Forward(ThreadPool& pool, kv::V4SequenceCache& cache, std::span<const int32_t> tokens,
                 LogitsMode mode, std::vector<float>* logits,
                 ForwardWorkspace* ws = nullptr) const;

 private:
  Model() = default;
  // The layer stack over ws->x for the ws->seqs of a step (n rows, 0 when joining a step).
  // `means`: the items of `batch` (in ws->seqs order) whose target-layer means are recorded
  // after each target layer (empty: none).
  void RunLayers(ThreadPool& pool, int64_t n, std::span<const BatchItem> batch, bool means,
                 ForwardWorkspace* ws) const;

  checkpoint::ModelConfig config_;
  std::shared_ptr<dist::ExpertParallel> ep_;  // null: one process holding every expert
  std::unique_ptr<ModelWeights> weights_;
  std::vector<RopeTable> rope_;  // per layer
  std::vector<int64_t> target_slot_;  // per layer: its slot in dspark.target_layer_ids, or -1
};

}  // namespace dsv4::v4
