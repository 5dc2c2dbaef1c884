// One V4 attention sublayer over a chunk of consecutive tokens of one sequence (spec §6-§9,
// Appendix C). Projections run batched over the chunk; then, token by token in position
// order, the window key, the compressors, the indexer and the sparse attention run exactly
// as in single-token decode, so every chunking gives bit-identical results.
#pragma once

#include <cstdint>

#include "core/bf16.h"
#include "core/thread_pool.h"
#include "kv/v4_cache.h"
#include "model/config.h"
#include "model/v4/rope.h"
#include "model/v4/weights.h"

namespace dsv4::v4 {

// x BF16 [n, D]: the attention input (after HC_pre and attn_norm) of positions pos0..pos0+n-1.
// out BF16 [n, D]. Appends the chunk's KV to `cache` (layer `w.layer`).
void AttentionForward(ThreadPool& pool, const model::ModelConfig& c, const LayerWeights& w,
                      const RopeTable& rope, kv::V4SequenceCache& cache, int64_t pos0,
                      const BF16* x, int64_t n, BF16* out);

}  // namespace dsv4::v4
