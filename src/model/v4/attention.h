// One V4 attention sublayer over a chunk of consecutive tokens of one sequence (spec §6-§9,
// Appendix C). Projections run batched over the chunk; then, token by token in position
// order, the window key, the compressors, the indexer and the sparse attention run exactly
// as in single-token decode, so every chunking gives bit-identical results.
#pragma once

#include <cstdint>
#include <span>

#include "core/bf16.h"
#include "core/thread_pool.h"
#include "kv/v4_cache.h"
#include "model/config.h"
#include "model/v4/rope.h"
#include "model/v4/weights.h"

namespace dsv4::v4 {

// The rows of one sequence inside a batch: rows [row0, row0 + n) are positions
// pos0 .. pos0 + n - 1 of the sequence whose cache is `cache`.
struct SeqSlice {
  kv::V4SequenceCache* cache = nullptr;
  int64_t pos0 = 0;
  int64_t row0 = 0;
  int64_t n = 0;
};

// x BF16 [rows, D]: the attention input (after HC_pre and attn_norm) of every row of the
// batch; out BF16 [rows, D]. Projections run over all rows at once (each weight is read once
// per step); each sequence's tokens then run in position order against its own cache
// (layer `w.layer`), to which their KV is appended.
void AttentionForward(ThreadPool& pool, const model::ModelConfig& c, const LayerWeights& w,
                      const RopeTable& rope, std::span<const SeqSlice> seqs, const BF16* x,
                      int64_t rows, BF16* out);

}  // namespace dsv4::v4
