// The April MTP module's forward (spec §11.3), the drafter of the first V4 release: for a
// position t of a sequence it takes the target's final residual streams X_t (before HC_head,
// Model::BatchItem::hidden) and the next token t+1, and gives logits for token t+2:
//   X0_j = bf16(e_proj(RMSNorm(embed(token_{t+1}); enorm)) + h_proj(RMSNorm(X_t,j; hnorm)))
//   X    = Block_L(X0) at position t   (layer id L = num_hidden_layers: SWA-only, plain RoPE)
//   logits = head(RMSNorm(HC_head(X; mtp.hc_head); mtp.norm))   (the shared FP32 head)
// It runs the main model's block and head code (block.h) with the same precision, batched
// over positions and sequences like Model::ForwardBatch, so any chunking or batching gives
// the same bits. The block's attention sees the module's own window of the last
// sliding_window positions, kept in a ring: a kv::V4SequenceCache over RingConfig (one
// SWA-only layer), one per sequence.
// Under expert parallelism (the target's Model::expert_parallel) the block's MoE exchanges
// rows with the other ranks like the target's: each ForwardBatch announces itself
// (dist::ExpertParallel::BeginDraftCall) and the other ranks join it with zero rows
// (JoinExpertParallelCall); one call at a time per process then.
// Immutable after construction; ForwardBatch may run for different rings from different
// threads (one process holding every expert).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/bf16.h"
#include "core/status.h"
#include "core/thread_pool.h"
#include "checkpoint/config.h"
#include "kv/v4_cache.h"
#include "models/common/logits_mode.h"
#include "models/v4/block.h"
#include "models/v4/draft_weights.h"
#include "models/v4/model.h"
#include "models/v4/rope.h"

namespace dsv4::v4 {

// The MTP forward's grow-only scratch (one per concurrent call; contents never change a
// result).
struct MtpWorkspace {
  ForwardWorkspace block;  // the block's and the head's
  std::vector<BF16> e;     // BF16 [n, D]: RMSNorm(embed(token_{t+1}); enorm)
  std::vector<BF16> ep;    // BF16 [n, D]: e_proj of it
  std::vector<BF16> xn;    // BF16 [n*hc, D]: RMSNorm(X_t,j; hnorm)
  std::vector<BF16> hp;    // BF16 [n*hc, D]: h_proj of it
};

class Mtp {
 public:
  // The module of `target` (whose embedding and head it shares) with weights `w`; both must
  // outlive it.
  Mtp(const Model& target, const MtpWeights& w);

  const checkpoint::ModelConfig& config() const { return target_.config(); }
  // hc_mult * hidden_size: the width of a row of X.
  int64_t hidden_width() const;

  // The config a ring (kv::V4SequenceCache) of this module is built over: the target's,
  // with one layer, SWA-only, whose ring has sliding_window + `history` slots. The attention
  // reads only the last sliding_window positions; the extra slots keep the rows of the
  // `history` positions before them, so a caller can move the ring back that far
  // (set_num_tokens) and have exactly the ring of the shorter sequence. The ring keeps a
  // pointer to the config: it must outlive the ring.
  checkpoint::ModelConfig RingConfig(int64_t history) const;

  // One sequence's part of a batched call.
  struct BatchItem {
    kv::V4SequenceCache* ring = nullptr;   // over a RingConfig; positions ring->num_tokens()..
    std::span<const BF16> hidden;          // BF16 [n, hc*D]: X_t of those n positions
    std::span<const int32_t> next_tokens;  // [n]: token t+1 of each position t
    models::LogitsMode mode = models::LogitsMode::kLast;
    std::vector<float>* logits = nullptr;  // FP32 [1 or n, vocab]: logits of token t+2 (resized)
    // When set: the block's final streams of the same rows as the logits, BF16 [1 or n,
    // hc*D] (resized): the X a chained draft step feeds back in place of the target's.
    std::vector<BF16>* streams = nullptr;
  };

  // Runs the module at positions ring->num_tokens() .. + n - 1 of each item and appends them
  // to its ring. InvalidArgument for a hidden/next_tokens size mismatch (naming both) or a
  // token outside the vocabulary, OutOfRange past max_position_embeddings, ResourceExhausted
  // when a ring cannot reserve its pages; no ring advances then. `ws`: the call's scratch;
  // null: a fresh one.
  Status ForwardBatch(ThreadPool& pool, std::span<const BatchItem> batch,
                      MtpWorkspace* ws = nullptr) const;
  // Expert parallelism: joins with zero rows the MoE of a ForwardBatch another rank runs.
  void JoinExpertParallelCall(ThreadPool& pool, MtpWorkspace* ws) const;

 private:
  // X0 BF16 [n, hc, D] of the rows into ws->block.x from ws->block.tokens and the items'
  // hidden rows (spec §11.3 steps 1-2).
  void Input(ThreadPool& pool, std::span<const BatchItem> batch, int64_t n,
             MtpWorkspace* ws) const;

  const Model& target_;
  const MtpWeights& weights_;
  LayerWeights block_;  // weights_.block as layer 0 of its ring
  RopeTable rope_;      // layer L's: plain rope_theta
};

}  // namespace dsv4::v4
