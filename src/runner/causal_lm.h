// The architecture-independent face of a model: create per-sequence state, feed tokens,
// get logits. DeepSeek-V4 and DeepSeek-V3.2 implement it; the CLI, the engine and the
// benches only see this interface.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/bf16.h"
#include "core/status.h"
#include "core/thread_pool.h"
#include "kv/kv_manager.h"
#include "kv/layout.h"
#include "kv/page_layout.h"
#include "kv/sequence_state.h"
#include "kv/v4_cache.h"
#include "checkpoint/config.h"
#include "checkpoint/load_options.h"
#include "models/common/hidden_rows.h"
#include "models/common/logits_mode.h"
#include "checkpoint/tensor.h"

namespace dsv4::v4 {
class Model;
}

namespace dsv4::runner {

class Drafter;

using models::HiddenRows;
using models::LogitsMode;

// The per-sequence state each model creates (the scheduler sees it through kv).
using kv::SequenceState;

class CausalLm {
 public:
  virtual ~CausalLm() = default;
  virtual const checkpoint::ModelConfig& config() const = 0;
  // How this model's cache is paged (for a KvManager shared by its sequences).
  virtual kv::PageLayout page_layout() const = 0;
  // A new, empty sequence drawing pages from `kv` (shared by all sequences of this model and
  // built from page_layout(); must outlive the sequence), or from a private unbounded pool
  // when `kv` is null.
  virtual std::unique_ptr<SequenceState> NewSequence(kv::KvManager* kv = nullptr) const = 0;
  // Whether sequences write KV data into their pages (false: a stand-in that only accounts
  // them, so the pools need no memory behind the pages).
  virtual bool writes_kv() const { return true; }
  // Whether sequences support TakeSnapshot/RestoreSnapshot (prefix caching).
  virtual bool snapshots_prefixes() const { return false; }
  // The DeepSeek-V4 forward behind this face, or null for other architectures and stand-ins:
  // V4's drafters (runner/mtp_drafter.h) share its embedding and head.
  virtual const v4::Model* v4_model() const { return nullptr; }
  // Feeds `tokens` at positions state.num_tokens().. (any chunk size; bit-identical logits
  // for any chunking). `state` must come from this model's NewSequence. InvalidArgument for
  // a token outside the vocabulary, OutOfRange past max_position_embeddings; the state is
  // unchanged on error.
  virtual Status Forward(ThreadPool& pool, SequenceState& state, std::span<const int32_t> tokens,
                         LogitsMode mode, std::vector<float>* logits) const = 0;

  // One sequence's part of a batched step.
  struct BatchItem {
    SequenceState* state = nullptr;
    std::span<const int32_t> tokens;
    LogitsMode mode = LogitsMode::kLast;
    std::vector<float>* logits = nullptr;
    // When set, receives the `hidden_rows` of every fed token, BF16 [n,
    // hidden_width(hidden_rows)]: the final residual streams before HC_head (what MTP's §11.3
    // X_t is) or DSpark's target-layer means (§11.4), for drafters that need them.
    std::vector<BF16>* hidden = nullptr;
    HiddenRows hidden_rows = HiddenRows::kFinalStreams;
  };
  // Width of BatchItem::hidden rows of `kind`: hc_mult * hidden_size for the final streams,
  // T * hidden_size for DSpark's T target layers; 0 when unsupported.
  virtual int64_t hidden_width(HiddenRows kind = HiddenRows::kFinalStreams) const {
    (void)kind;
    return 0;
  }
  // Several sequences in one step; each token's logits are bit-identical to running its
  // sequence alone. The default runs them one by one; models that batch override it (every
  // weight then read once per step). On error no sequence has advanced.
  virtual Status ForwardBatch(ThreadPool& pool, std::span<const BatchItem> batch) const;

  // Expert parallelism (LoadOptions::expert_parallel), a rank with no sequences of its own:
  // joins every forward step the other ranks run, with zero rows, and every call of their
  // drafter through `drafter` (this rank's copy of it, Drafter::JoinExpertParallelCall; null:
  // rank 0 must not draft), until one of them calls dist::ExpertParallel::Finish
  // (the models' FollowSteps). FailedPrecondition for a model not loaded with expert
  // parallelism.
  virtual Status FollowExpertParallelSteps(ThreadPool& pool,
                                           const Drafter* drafter = nullptr) const;
  // Data-parallel serving: joins one agreed step with zero rows (the models' JoinStep).
  virtual Status JoinExpertParallelStep(ThreadPool& pool) const;
};

// The model for `c.arch`. `source` must outlive it. Errors of the architecture's
// Model::Create (bad config, missing or mis-shaped tensors, NaN/Inf values with
// options.check_finite).
Result<std::unique_ptr<CausalLm>> CreateCausalLm(const checkpoint::ModelConfig& c,
                                                 const checkpoint::TensorSource& source,
                                                 const checkpoint::LoadOptions& options = {});

}  // namespace dsv4::runner
