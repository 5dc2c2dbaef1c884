// One V4 attention sublayer over a chunk of consecutive tokens of one sequence (spec §6-§9,
// Appendix C). Projections run batched over the chunk; the CSA indexer (its own compressor
// and the top-k scan) runs for a group of consecutive tokens at a time, each token's
// selection exactly its own scan's; then, token by token in position order, the window key,
// the attention compressor and the sparse attention run exactly as in single-token decode, so
// every chunking gives bit-identical results.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/bf16.h"
#include "core/thread_pool.h"
#include "kernels/cpu/indexer.h"
#include "kernels/cpu/workspace.h"
#include "kv/v4_cache.h"
#include "checkpoint/config.h"
#include "models/v4/rope.h"
#include "models/v4/weights.h"

namespace dsv4::v4 {

// The rows of one sequence inside a batch: rows [row0, row0 + n) are positions
// pos0 .. pos0 + n - 1 of the sequence whose cache is `cache`.
struct SeqSlice {
  kv::V4SequenceCache* cache = nullptr;
  int64_t pos0 = 0;
  int64_t row0 = 0;
  int64_t n = 0;
};

// Grow-only scratch of one sequence's attention (AttendSequence: the indexer scan, the
// compressor steps and the sparse attention of its tokens). A decode batch attends several
// sequences at once, one per pool thread, each with a scratch of its own.
struct AttendScratch {
  kernels::Workspace kernels;  // the indexer scan's and the attention kernel's scratch
  // Per group of tokens (CSA indexer).
  std::vector<kernels::IndexerQuery> queries;     // [group]: the tokens' indexer queries
  std::vector<int64_t> visible;                   // [group]: the keys each token sees
  std::vector<std::vector<int64_t>> selections;   // [group]: each token's entries, ascending
  std::vector<const uint8_t*> key_pages;          // one pointer per page of indexer keys
  // Per token.
  std::vector<const uint8_t*> entries;    // the token's KV set: packed entry pointers
  std::vector<int64_t> selected;          // HCA: compressed entries attended to, ascending
  std::vector<float> gate;                // FP32 [kappa*c]: z + ape of one compressor step
  std::vector<float> pooled;              // FP32 [c]: an emitted entry before post-processing
  std::vector<BF16> entry;                // BF16 [c]: the entry being post-processed
};

// Grow-only scratch of AttentionForward, owned by the caller (one per forward; not shared
// between threads) and reused by every layer: once grown to the chunk, a call allocates
// nothing per token.
struct AttentionWorkspace {
  kernels::Workspace kernels;      // the linears' scratch
  std::vector<int64_t> positions;  // [rows]
  // Batched projections of the rows (everything that does not depend on other tokens' KV).
  std::vector<BF16> cq;          // [rows, Q]: q_norm(wq_a x), shared with the indexer
  std::vector<BF16> q;           // [rows, H*d]: normed per head, RoPE'd
  std::vector<BF16> kv;          // [rows, d]: normed, RoPE'd window keys (before FP8 packing)
  std::vector<float> cv, cz;     // [rows, kappa*d]: attention compressor values / gate logits
  std::vector<BF16> iq;          // [rows, nI*dI]: indexer queries (RoPE, Hadamard, FP4-simulated)
  std::vector<BF16> iw;          // [rows, nI]: indexer head weights (BF16, scaled)
  std::vector<float> icv, icz;   // [rows, 2*dI]: indexer compressor values / gate logits
  // The sequences' attention: `attend` when they run one after another on the whole pool;
  // with several sequences, per pool thread a one-thread pool and a scratch (grown once).
  AttendScratch attend;
  std::vector<std::unique_ptr<ThreadPool>> seq_pools;
  std::vector<std::unique_ptr<AttendScratch>> seq_scratch;
  std::vector<int64_t> seq_order;  // [sequences]: the ones attended in parallel, costliest first
  std::vector<double> seq_cost;    // [sequences]: their estimated work (the schedule's input)
  std::vector<double> seq_load;    // [threads]: the greedy schedule's work per thread
  // Output projection.
  std::vector<BF16> o;             // [rows, H*d]: attention output per head
  std::vector<BF16> group_in;      // [rows, H*d/G]: one group's heads
  std::vector<BF16> group_out;     // [rows, R]
  std::vector<BF16> z;             // [rows, G*R]
};

// x BF16 [rows, D]: the attention input (after HC_pre and attn_norm) of every row of the
// batch; out BF16 [rows, D]. Projections run over all rows at once (each weight is read once
// per step); each sequence's tokens then run in position order against its own cache
// (layer `w.layer`), to which their KV is appended.
void AttentionForward(ThreadPool& pool, const checkpoint::ModelConfig& c, const LayerWeights& w,
                      const RopeTable& rope, std::span<const SeqSlice> seqs, const BF16* x,
                      int64_t rows, BF16* out, AttentionWorkspace* ws);

// The parts of AttentionForward another attention reuses (DSpark's draft blocks, dspark.h):
// ProjectWindowKeys writes ws->kv BF16 [n, d]: kv_norm(wkv x), RoPE at positions[t] (before
// FP8 packing: EncodeKvEntry); ProjectAttention writes everything AttentionForward projects
// (ws->cq, q: normed per head, RoPE'd; kv; the compressor's and indexer's rows);
// AttentionOutput maps ws->o BF16 [n, H*d] (de-rotated attention output) through the grouped
// wo_a and wo_b into out BF16 [n, D].
void ProjectWindowKeys(ThreadPool& pool, const checkpoint::ModelConfig& c, const LayerWeights& w,
                       const RopeTable& rope, const int64_t* positions, const BF16* x, int64_t n,
                       AttentionWorkspace* ws);
void ProjectAttention(ThreadPool& pool, const checkpoint::ModelConfig& c, const LayerWeights& w,
                      const RopeTable& rope, const int64_t* positions, const BF16* x, int64_t n,
                      AttentionWorkspace* ws);
void AttentionOutput(ThreadPool& pool, const checkpoint::ModelConfig& c, const LayerWeights& w,
                     int64_t n, BF16* out, AttentionWorkspace* ws);

}  // namespace dsv4::v4
