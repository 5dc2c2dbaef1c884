// One V3.2 attention sublayer, MLA with DeepSeek Sparse Attention (spec §14.2-§14.3), over a
// chunk of consecutive tokens of one sequence. Projections run batched over the chunk; then,
// token by token in position order, the token's MLA record and indexer key are appended to
// the cache, the indexer picks its top-k tokens, and attention runs over them exactly as in
// single-token decode, so every chunking gives bit-identical results.
//
// MLA runs in the absorbed form for every token, prefill included: the query's no-RoPE part
// is moved into the latent space (q_nope · W_UK) and attends over the cached latents
// directly; the output is lifted with W_UV afterwards. DeepSeek's corrected reference uses the
// up-projected (MHA) form in prefill and the absorbed form in decode; the two are the same
// function (associativity of the products), differing only in where BF16 roundings fall. One
// form everywhere is what makes prefill, chunked prefill and decode bit-identical.
#pragma once

#include <cstdint>
#include <vector>

#include "core/bf16.h"
#include "core/thread_pool.h"
#include "kernels/cpu/workspace.h"
#include "kv/v32_cache.h"
#include "checkpoint/config.h"
#include "models/v32/weights.h"

namespace dsv4::v32 {

// Per-model constants of the attention.
struct MlaConstants {
  std::vector<float> inv_freq;  // FP32 [rope/2]: the YaRN table of MLA and the indexer
  float softmax_scale = 0.0f;   // λ = (nope + rope)^-0.5 · mscale² (spec §14.2 step 4)
};
MlaConstants MakeMlaConstants(const checkpoint::ModelConfig& c);

// x BF16 [n, D]: the attention input (after input_layernorm) of positions pos0..pos0+n-1,
// where pos0 == cache.NumRecords(w.layer). out BF16 [n, D]. Appends the chunk's MLA records
// and indexer keys to `cache` (layer `w.layer`), whose pages for positions [0, pos0 + n) must
// be reserved (V32SequenceCache::Reserve). When `selections` is not null, appends each
// token's DSA top-k (ascending positions) to it. ws: the kernels' scratch.
void AttentionForward(ThreadPool& pool, const checkpoint::ModelConfig& c, const LayerWeights& w,
                      const MlaConstants& k, kv::V32SequenceCache& cache, int64_t pos0,
                      const BF16* x, int64_t n, BF16* out, kernels::Workspace* ws,
                      std::vector<std::vector<int64_t>>* selections = nullptr);

}  // namespace dsv4::v32
