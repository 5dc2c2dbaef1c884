// The roofline bound of one decode token in one attention layer, kernel by kernel: what the
// fastest possible kernels would take on this machine (roofline.h limits), to set the measured
// `dsv4 bench decode` time against. At one token every linear reads each weight once for one
// multiply-add, so the weights are memory-bound: weight bytes / read bandwidth. The two
// attention-side kernels are bounded by max(bytes / read bandwidth, flops / peak) each (a flop
// is 2 per multiply-add):
//   V4 CSA  indexer scan over every visible compressed key (index_n_heads x index_head_dim
//           multiply-adds per key, the packed FP4 key bytes), then the gathered attention over
//           the window rows and the top-k entries;
//   V4 HCA  gathered attention over the window rows and every compressed entry (no indexer);
//   V4 SWA  gathered attention over the window rows;
//   V3.2    DSA indexer scan over every key (FP8 keys; none while pos + 1 <= index_topk, where
//           every record is kept unscored), then MLA attention in the absorbed form over the
//           top-k records (kv_lora_rank + rope wide).
// Gathered attention is heads x width x entries x 2 multiply-adds (scores, then values) over
// one shared K=V row per entry (MQA). Entry counts are those of the engine's decode path
// (model/v4/attention.cpp, model/v32/attention.cpp); bytes are the cache formats' (kv/layout.h),
// so indexer bytes + attention bytes == DecodeKvBytesPerLayer (decode_cost.h). Projections of
// the query, RoPE, norms, top-k selection and the softmax's exponentials are not counted: the
// bound is a floor, not a model.
#pragma once

#include <cstdint>

#include "bench/roofline.h"
#include "kernels/cpu/isa.h"
#include "checkpoint/config.h"

namespace dsv4::bench {

// What one decode token at position `pos` (it sees pos + 1 tokens) asks of the attention-side
// kernels of one layer.
struct DecodeKernelWork {
  int64_t indexer_keys = 0;       // keys the indexer scores (0: no scan)
  int64_t indexer_bytes = 0;      // their packed bytes in the cache
  int64_t indexer_macs = 0;       // multiply-adds: heads x dim per key
  int64_t attention_entries = 0;  // KV rows the attention reads (window + selected)
  int64_t attention_bytes = 0;    // their packed bytes in the cache
  int64_t attention_macs = 0;     // heads x width x entries x 2
};

// `kind` is ignored for V3.2 (one layer type). pos >= 0.
DecodeKernelWork DecodeKernelWorkPerLayer(const checkpoint::ModelConfig& c, checkpoint::LayerKind kind,
                                          int64_t pos);

// The bound of one layer for one token, by part, in milliseconds.
struct DecodeBound {
  double weights_ms = 0;    // attention weights / read bandwidth
  double indexer_ms = 0;    // max(bytes / bandwidth, flops / peak) of the indexer scan
  double attention_ms = 0;  // the same for the gathered attention
  double total_ms() const { return weights_ms + indexer_ms + attention_ms; }
};

// `weight_bytes`: the layer's attention weights read per token. m.read_bytes_per_s > 0 and the
// peak's rate > 0 (PeakFlops).
DecodeBound DecodeBoundPerLayer(const DecodeKernelWork& work, int64_t weight_bytes,
                                const MachineLimits& m, Peak peak);

// The peak the attention-side kernels run at under `isa`: VDPBF16PS on kAvx512Bf16 (their
// dot products use it there), FMA otherwise.
Peak DecodePeak(kernels::Isa isa);

}  // namespace dsv4::bench
