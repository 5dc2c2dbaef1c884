// `dsv4 bench decode`: the cost of one decode token at a given depth through real-dimension
// attention stacks (V3.2 MLA+DSA vs V4 CSA/HCA/SWA), driving the engine's own per-layer
// attention functions (v4::AttentionForward, v32::AttentionForward) on random weights
// (attention_weights.h) and a cache filled synthetically to the depth (synthetic_kv.h).
// Per layer that is: q and kv projections, the compressor steps, the indexer scan and top-k,
// the gathered attention (with the sink for V4), and the output projections (wo_a/wo_b,
// V3.2: W_UV and o_proj). MoE/FFN, mHC, embedding and head are not run. A subset of layers
// (layer_subset.h) runs for real; the full stack is estimated per layer type. Given the
// machine's limits, each layer type also gets its roofline bound (decode_bound.h), so that
// measured / bound says how far the decode path is from what this machine allows.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bench/layer_subset.h"
#include "bench/roofline.h"
#include "core/status.h"
#include "core/thread_pool.h"
#include "checkpoint/config.h"

namespace dsv4::bench {

// What a decode bench runs and what it leaves out, for its output.
inline constexpr const char* kDecodeRuns =
    "q/kv projections, compressor steps, indexer scan + top-k, gathered attention (V4: with "
    "the sink), output projections (V4: wo_a/wo_b; V3.2: W_UV + o_proj), through the engine's "
    "own attention code";
inline constexpr const char* kDecodeNotRun = "MoE/FFN, mHC, embedding, head";

struct DecodeOptions {
  std::vector<int64_t> depths;  // tokens in the cache before the decoded one, each >= 1
  int64_t num_layers = 0;       // layers that run; 0: one per layer type
  int64_t iters = 2;            // timed tokens per depth, after one untimed warm-up token
  uint64_t seed = 1;
  // Refuse (ResourceExhausted, before allocating) when the cache and the decode scratch of the
  // layers that run would need more than this many bytes at the deepest depth; 0: no limit.
  int64_t max_bytes = 0;
  // The roofline limits the bounds are computed from (MeasureLimits on the same pool); no
  // bounds (all 0) while limits.read_bytes_per_s == 0.
  MachineLimits limits{};
  Peak peak = Peak::kFma;  // the attention-side kernels' peak (DecodePeak)
};

// Per layer type at one depth.
struct DecodeGroupCost {
  std::string name;        // "SWA", "CSA", "HCA", "MLA+DSA"
  int64_t full_count = 0;  // layers of this type in the full stack
  int64_t ran_layers = 0;
  double ms_per_layer = 0;             // mean over the layers that ran and the timed tokens
  int64_t kv_bytes_per_layer = 0;      // KV read per token (model below), mean position
  int64_t weight_bytes_per_layer = 0;  // attention weights read per token
  // Roofline bound per layer per token (decode_bound.h) at weight_bytes_per_layer, mean over
  // the timed positions; 0 without limits.
  double bound_weights_ms = 0;
  double bound_indexer_ms = 0;
  double bound_attention_ms = 0;
  double bound_ms_per_layer() const {
    return bound_weights_ms + bound_indexer_ms + bound_attention_ms;
  }
};

struct DecodePoint {
  int64_t depth = 0;
  std::vector<DecodeGroupCost> groups;
  double fill_seconds = 0;
  double ran_ms() const;         // per token, the layers that ran
  double full_ms() const;        // per token, full stack: sum of full_count x ms_per_layer
  int64_t kv_bytes() const;      // per token, full stack
  int64_t weight_bytes() const;  // per token, full stack
  double gb_per_s() const;       // (kv_bytes + weight_bytes) / full_ms, in 1e9 B/s
  double bound_ms() const;       // per token, full stack: sum of full_count x bound/layer
  // full_ms / bound_ms; 0 without a bound.
  double measured_over_bound() const;
};

struct DecodeReport {
  std::string label;
  checkpoint::ModelConfig config;  // the full model
  LayerSubset subset;
  int64_t weight_bytes_ran = 0;     // attention weights of the layers that ran
  std::vector<DecodePoint> points;  // in the order of DecodeOptions::depths
};

// KV bytes one decode token at position `pos` reads in one layer, as the engine's decode path
// reads them (capacity.md §6.6): V4 window rows min(pos+1, window) entries in every layer;
// CSA every indexer key plus the top-k entries, HCA every compressed entry; V3.2 every
// indexer key plus the top-k records (only the records while pos + 1 <= top-k: no scan).
// The indexer and attention bytes of DecodeKernelWorkPerLayer (decode_bound.h), summed.
int64_t DecodeKvBytesPerLayer(const checkpoint::ModelConfig& c, checkpoint::LayerKind kind, int64_t pos);

// Runs the layers of LayerSubset(c, num_layers) for every depth (ascending internally; the
// cache grows from one depth to the next). InvalidArgument for bad depths or iters.
Result<DecodeReport> MeasureDecode(ThreadPool& pool, const checkpoint::ModelConfig& c, std::string label,
                                   const DecodeOptions& o);

// STREAM-style memory bandwidth on `pool`: copy (counts bytes read + written) and read-only
// sum over two buffers of `buffer_bytes` each (>> the last-level cache); best of `reps`.
struct Bandwidth {
  int64_t buffer_bytes = 0;
  double copy_gb_per_s = 0;
  double read_gb_per_s = 0;
};
Bandwidth MeasureBandwidth(ThreadPool& pool, int64_t buffer_bytes = int64_t{256} << 20,
                           int reps = 5);

}  // namespace dsv4::bench
