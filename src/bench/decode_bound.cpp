#include "bench/decode_bound.h"

#include <algorithm>

#include "core/check.h"
#include "kv/layout.h"

namespace dsv4::bench {

using checkpoint::LayerKind;
using checkpoint::ModelConfig;

DecodeKernelWork DecodeKernelWorkPerLayer(const ModelConfig& c, LayerKind kind, int64_t pos) {
  DSV4_CHECK(pos >= 0);
  const kv::KvFormats f = kv::DefaultKvFormats(c.arch);
  const int64_t visible = pos + 1;
  const int64_t key_bytes = kv::IndexerKeyBytes(c.index_head_dim, f.indexer);
  const int64_t index_macs_per_key = c.index_n_heads * c.index_head_dim;
  DecodeKernelWork w;
  auto scan = [&](int64_t keys) {
    w.indexer_keys = keys;
    w.indexer_bytes = keys * key_bytes;
    w.indexer_macs = keys * index_macs_per_key;
  };
  if (c.arch == checkpoint::Arch::kV32) {
    // SelectTokens: no scan while every token fits in the top-k.
    if (visible > c.index_topk) scan(visible);
    const int64_t width = c.kv_lora_rank + c.qk_rope_head_dim;  // absorbed MLA, MQA rows
    w.attention_entries = std::min(visible, c.index_topk);
    w.attention_bytes = w.attention_entries * kv::MlaRecordBytes(c, f.mla);
    w.attention_macs = c.num_attention_heads * width * w.attention_entries * 2;
    return w;
  }
  // V4 AttendSequence: window rows, then the CSA top-k of the visible compressed entries (the
  // scan runs even when they all fit) or every HCA compressed entry.
  int64_t selected = 0;
  if (kind == LayerKind::kCsa) {
    const int64_t compressed = visible / 4;
    scan(compressed);
    selected = std::min(compressed, c.index_topk);
  } else if (kind == LayerKind::kHca) {
    selected = visible / 128;
  }
  w.attention_entries = std::min(visible, c.sliding_window) + selected;
  w.attention_bytes = w.attention_entries * kv::EntryBytes(c, f.entry);
  w.attention_macs = c.num_attention_heads * c.head_dim * w.attention_entries * 2;
  return w;
}

DecodeBound DecodeBoundPerLayer(const DecodeKernelWork& work, int64_t weight_bytes,
                                const MachineLimits& m, Peak peak) {
  DSV4_CHECK(m.read_bytes_per_s > 0 && PeakFlops(m, peak) > 0);
  auto ms = [&](int64_t bytes, int64_t macs) {
    return 1e3 * RooflineSeconds(m, static_cast<double>(bytes), 2.0 * static_cast<double>(macs),
                                 peak);
  };
  DecodeBound b;
  b.weights_ms = 1e3 * static_cast<double>(weight_bytes) / m.read_bytes_per_s;
  b.indexer_ms = ms(work.indexer_bytes, work.indexer_macs);
  b.attention_ms = ms(work.attention_bytes, work.attention_macs);
  return b;
}

Peak DecodePeak(kernels::Isa isa) {
  return isa == kernels::Isa::kAvx512Bf16 ? Peak::kBf16Dot : Peak::kFma;
}

}  // namespace dsv4::bench
