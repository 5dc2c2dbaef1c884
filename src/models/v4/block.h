// The two stages every V4 forward is made of, over all rows of a batched step: one block
// (spec §2 step 3: HC_pre -> norm -> attention -> HC_post, HC_pre -> norm -> MoE -> HC_post)
// and the head (§2 steps 4-5: HC_head -> norm -> FP32 head). The main model runs the block once
// per layer; the MTP module (mtp.h, spec §11.3) runs it once on its own input and uses its
// own HC_head and norm with the shared head; DSpark's draft blocks (dspark.h) run it with
// their own attention (BlockAttentionInput / BlockFinish). Each row's bits do not depend on the batch, the
// chunking or the thread count.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/bf16.h"
#include "core/thread_pool.h"
#include "checkpoint/config.h"
#include "kernels/cpu/workspace.h"
#include "models/common/logits_mode.h"
#include "dist/expert_parallel.h"
#include "models/v4/attention.h"
#include "models/v4/mhc.h"
#include "models/v4/moe.h"
#include "models/v4/rope.h"
#include "models/v4/weights.h"

namespace dsv4::v4 {

// The scratch of one forward call: grown by the first call or layer that needs it and reused
// by every layer and token. A caller that keeps one across calls (the runner, for the
// engine's steps) makes a warm decode step allocate nothing: buffers only grow, to the
// largest step seen, and are never zero-filled again. Not thread-safe: one per concurrent
// call. Its contents never change a result.
struct ForwardWorkspace {
  MhcWorkspace mhc;
  MhcMixes mix;
  AttentionWorkspace attention;
  MoeScratch moe;
  kernels::Workspace kernels;  // the MoE's and the head's
  // The step's batch and residual streams.
  std::vector<SeqSlice> seqs;  // [batch]
  std::vector<int32_t> tokens; // [n]: every row's token
  std::vector<BF16> x;         // BF16 [n, hc, D]: residual streams
  std::vector<BF16> u, f;      // BF16 [n, D]: a sublayer's input and output
  // The head, over the rows whose logits are wanted.
  std::vector<int64_t> rows;   // [rows]: their rows in the batch
  std::vector<BF16> xh, h;     // BF16 [rows, hc, D], [rows, D]
  std::vector<float> logits;   // FP32 [rows, vocab]
};

// One block over the n rows of `seqs` (in row order): x BF16 [n, hc, D], updated in place;
// tokens [n]: each row's token (hash routing). The attention appends each row's KV to its
// sequence's cache (layer `w.layer` of it) in position order. Scratch: every field of `ws`
// but seqs, tokens, x, rows, xh, h and logits. `ep`: expert parallelism (the MoE exchanges
// rows with the ranks owning their experts; every rank runs the block in the same step, n = 0
// included); null: this process holds every expert.
void BlockForward(ThreadPool& pool, const checkpoint::ModelConfig& c, const LayerWeights& w,
                  const RopeTable& rope, std::span<const SeqSlice> seqs, const int32_t* tokens,
                  BF16* x, int64_t n, ForwardWorkspace* ws, dist::ExpertParallel* ep = nullptr);

// BlockForward in its parts, for a block whose attention is not AttentionForward (DSpark's
// draft blocks, dspark.h): BlockAttentionInput computes the attention input HC_pre ->
// attn_norm into ws->u (BF16 [n, D], ws->mix kept); the caller writes the attention output
// into ws->f (BF16 [n, D]); BlockFinish adds it (HC_post) and runs the MoE half.
// BlockForward is exactly BlockAttentionInput, AttentionForward(ws->u -> ws->f), BlockFinish.
BF16* BlockAttentionInput(ThreadPool& pool, const checkpoint::ModelConfig& c,
                          const LayerWeights& w, const BF16* x, int64_t n, ForwardWorkspace* ws);
void BlockFinish(ThreadPool& pool, const checkpoint::ModelConfig& c, const LayerWeights& w,
                 const int32_t* tokens, BF16* x, int64_t n, ForwardWorkspace* ws,
                 dist::ExpertParallel* ep = nullptr);

// The head over rows `rows` of x BF16 [n, hc, D]: h = RMSNorm(HC_head(X; hc_head); norm),
// logits = h · headᵀ in FP32, in one GEMM (every head tile read once for all rows). Returns
// ws->logits.data(): FP32 [rows.size(), vocab]. Scratch: ws->xh, h, logits, mhc, kernels.
const float* HeadForward(ThreadPool& pool, const checkpoint::ModelConfig& c,
                         const MhcWeights& hc_head, const float* norm, const LinearWeight& head,
                         const BF16* x, std::span<const int64_t> rows, ForwardWorkspace* ws);

// The rows of `s` whose logits a batch item wants, appended to *rows (when not null): none
// when !wanted (no output vector), for kNone or an empty item; the last row for kLast; every
// row for kAll. Returns how many.
int64_t AppendLogitRows(const SeqSlice& s, models::LogitsMode mode, bool wanted,
                        std::vector<int64_t>* rows);

// MhcParams of `c` (hc streams of width D, its Sinkhorn iterations and epsilons).
MhcParams MhcParamsOf(const checkpoint::ModelConfig& c);

}  // namespace dsv4::v4
