// DSpark's draft blocks (spec §11.4), the drafter of V4-Flash-0731 / V4-Pro-0813: a
// semi-autoregressive block drafter fed by the target's hidden states.
//
// Context (Extend): for every committed position t the target records, after each layer of
// dspark.target_layer_ids, the mean of its hc residual streams (Model::BatchItem::hidden with
// HiddenRows::kTargetLayerMeans), concatenated: h_t BF16 [T*D]. Then
//   main_x_t = RMSNorm(main_proj(h_t); main_norm)                        BF16 [D]
// and each draft block b writes its own window key of main_x_t at position t into layer b of
// the sequence's ring (a kv::V4SequenceCache over RingConfig: N SWA-only layers):
//   k_t^b = FP8-packed(RoPE_t(kv_norm_b(wkv_b(main_x_t))))   (the main model's window-key path)
// Draft: with P positions committed and `anchor` the token sampled at position P, the block
// input is [anchor, noise x (S-1)] (S = dspark.block_size, noise = dspark.noise_token_id) at
// positions P .. P+S-1, embedded with the shared embedding and copied to the hc streams. Each
// draft block is a full V4 block (block.h: mHC, attention, MoE) whose attention differs: the
// S queries (RoPE at their positions) attend to the block's window entries of positions
// [max(0, P-W), P) (W = sliding_window) followed by the S block keys (wkv/kv_norm/RoPE/FP8 of
// the block rows; no causal mask inside the block; none of it written to the ring), with the
// sink, in one softmax; de-rotation at the query position, wo_a / wo_b. Blocks chain (block
// b+1 reads block b's streams). The last block's HC_head -> norm gives x_i BF16 [D] and the
// shared FP32 head the base logits of row i. Left to right, from prev = anchor:
//   e_i = markov_w1[prev] (BF16 [R]); logits_i = base_i + bf16(markov_w2 · e_i) (FP32 sum);
//   draft_i = argmax logits_i (ties to the lower id); prev = draft_i;
//   confidence_i = sigmoid(bf16(proj([x_i ; e_i])))  (FP32 sigmoid)
// Row i drafts the token of position P+i+1: one block gives S drafts.
// Every row's bits depend only on its own sequence: any batching and any split of the
// context into Extend calls give the same bits. Under expert parallelism (the target's
// Model::expert_parallel) the blocks' MoE exchanges rows with the other ranks like the
// target's: each Draft announces itself (dist::ExpertParallel::BeginDraftCall) and the other
// ranks join its MoE layers with zero rows (JoinExpertParallelCall); Extend has no MoE.
// Immutable after construction.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/bf16.h"
#include "core/status.h"
#include "core/thread_pool.h"
#include "checkpoint/config.h"
#include "kv/v4_cache.h"
#include "models/v4/block.h"
#include "models/v4/draft_weights.h"
#include "models/v4/model.h"
#include "models/v4/rope.h"

namespace dsv4::v4 {

// DSpark's grow-only scratch (one per concurrent call; contents never change a result).
struct DsparkWorkspace {
  ForwardWorkspace block;           // the blocks' and the head's
  std::vector<int64_t> positions;   // [rows]
  std::vector<BF16> main_x;         // BF16 [m, D]
  std::vector<uint8_t> block_keys;  // [rows, entry_bytes]: the block rows' packed keys
  std::vector<int32_t> prev;        // [B]: each item's Markov state token
  std::vector<BF16> e;              // BF16 [B, R]: markov_w1 rows
  std::vector<BF16> bias;           // BF16 [B, V]: markov_w2 · e
  std::vector<BF16> feature;        // BF16 [B, D + R]: [x_i ; e_i]
  std::vector<BF16> conf;           // BF16 [B]: proj of it
};

class Dspark {
 public:
  // The drafter of `target` (whose embedding and head it shares) with weights `w`; both must
  // outlive it.
  Dspark(const Model& target, const DsparkWeights& w);

  const checkpoint::ModelConfig& config() const { return target_.config(); }
  // T * hidden_size: the width of a target-layer-means row (Model::hidden_width).
  int64_t hidden_width() const;
  int64_t num_blocks() const { return static_cast<int64_t>(blocks_.size()); }
  int64_t block_size() const { return config().dspark.block_size; }

  // The config a ring of this drafter is built over: the target's with num_blocks() SWA-only
  // layers whose rings have sliding_window + `history` slots (the attention reads the last
  // sliding_window positions; the extra slots let a caller move the ring back that far with
  // set_num_tokens). The ring keeps a pointer to it: it must outlive the ring.
  checkpoint::ModelConfig RingConfig(int64_t history) const;

  // One sequence's newly committed positions.
  struct ContextItem {
    kv::V4SequenceCache* ring = nullptr;  // over a RingConfig; positions ring->num_tokens() ..
    std::span<const BF16> hidden;         // BF16 [m, T*D]: h_t of those m positions
  };
  // Writes every block's window key of those positions into the rings and advances them.
  // InvalidArgument for a hidden size that is not a whole number of rows, OutOfRange past
  // max_position_embeddings, ResourceExhausted when a ring cannot reserve its pages; no ring
  // advances then. `ws`: the call's scratch; null: a fresh one.
  Status Extend(ThreadPool& pool, std::span<const ContextItem> batch,
                DsparkWorkspace* ws = nullptr) const;

  // One sequence's draft block.
  struct DraftItem {
    const kv::V4SequenceCache* ring = nullptr;  // its context: positions [0, ring->num_tokens())
    int32_t anchor = 0;                          // the token at position ring->num_tokens()
    std::vector<int32_t>* drafts = nullptr;      // [S]: the drafted tokens (resized)
    std::vector<float>* confidence = nullptr;    // [S] (resized), may be null
    std::vector<float>* logits = nullptr;        // FP32 [S, V] after the Markov term, may be null
  };
  // Runs the draft block of every item (the rings are only read). InvalidArgument for an
  // anchor outside the vocabulary, OutOfRange when the block's last position P+S-1 would pass
  // max_position_embeddings.
  Status Draft(ThreadPool& pool, std::span<const DraftItem> batch,
               DsparkWorkspace* ws = nullptr) const;
  // Expert parallelism: joins with zero rows the blocks' MoE of a Draft another rank runs.
  void JoinExpertParallelCall(ThreadPool& pool, DsparkWorkspace* ws) const;

 private:
  // The attention of draft block b over the block rows of `batch` (S each, row order):
  // ws->block.u -> ws->block.f.
  void BlockAttention(ThreadPool& pool, int64_t b, std::span<const DraftItem> batch, int64_t n,
                      DsparkWorkspace* ws) const;
  // The Markov chain and the confidence head over the base logits (ws->block.logits, rows in
  // batch order) and x (ws->block.h).
  void Markov(ThreadPool& pool, std::span<const DraftItem> batch, DsparkWorkspace* ws) const;

  const Model& target_;
  const DsparkWeights& weights_;
  std::vector<LayerWeights> blocks_;  // block b as layer b of its ring
  std::vector<RopeTable> rope_;       // block b's (layer L + b: plain rope_theta)
};

}  // namespace dsv4::v4
