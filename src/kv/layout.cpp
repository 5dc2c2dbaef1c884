#include "kv/layout.h"

#include <algorithm>

#include "core/check.h"
#include "core/kv_entry.h"

namespace dsv4::kv {

using checkpoint::Arch;
using checkpoint::LayerKind;
using checkpoint::ModelConfig;

KvFormats DefaultKvFormats(Arch arch) {
  KvFormats f;
  if (arch == Arch::kV32) f.indexer = IndexerFormat::kFp8;
  return f;
}

int64_t EntryBytes(const ModelConfig& c, EntryFormat f) {
  if (f == EntryFormat::kBf16) return 2 * c.head_dim;
  return KvEntryLayout{c.d_nope(), c.qk_rope_head_dim}.bytes();
}

int64_t IndexerKeyBytes(int64_t dim, IndexerFormat f) {
  switch (f) {
    case IndexerFormat::kFp4: return IndexerKeyFp4Layout{dim}.bytes();
    case IndexerFormat::kFp8: return IndexerKeyFp8Bytes(dim);
    case IndexerFormat::kBf16: return 2 * dim;
    case IndexerFormat::kNone: return 0;
  }
  return 0;
}

int64_t MlaRecordBytes(const ModelConfig& c, MlaFormat f) {
  const int64_t lat = c.kv_lora_rank, rope = c.qk_rope_head_dim;
  switch (f) {
    case MlaFormat::kFp8: return lat + 4 * (lat / 128) + 2 * rope;
    case MlaFormat::kBf16: return 2 * (lat + rope);
    case MlaFormat::kFp8NoScale: return lat + 2 * rope;
    case MlaFormat::kV4Entry: return 584;
    case MlaFormat::kAllFp8NoScale: return lat + rope;
  }
  return 0;
}

int64_t CompressorStateBytes(const ModelConfig& c, LayerKind k, bool bf16) {
  const int64_t elem = bf16 ? 2 : 4;
  auto state = [&](int64_t m, int64_t width) {
    const int64_t kappa = m == 4 ? 2 : 1;
    return 2 * (kappa * m) * (kappa * width) * elem;  // kv and score rows
  };
  switch (k) {
    case LayerKind::kSwa: return 0;
    case LayerKind::kCsa: return state(4, c.head_dim) + state(4, c.index_head_dim);
    case LayerKind::kHca: return state(128, c.head_dim);
  }
  return 0;
}

int64_t KvFootprint::total_bytes() const {
  int64_t s = 0;
  for (const auto& comp : components) s += comp.bytes();
  return s;
}
int64_t KvFootprint::growing_bytes() const {
  int64_t s = 0;
  for (const auto& comp : components) s += comp.fixed ? 0 : comp.bytes();
  return s;
}
int64_t KvFootprint::fixed_bytes() const { return total_bytes() - growing_bytes(); }

KvFootprint ComputeKvFootprint(const ModelConfig& c, const KvFormats& f, int64_t num_tokens) {
  DSV4_CHECK(num_tokens >= 0);
  KvFootprint fp;
  fp.num_tokens = num_tokens;
  auto add = [&](std::string name, int64_t layers, int64_t bpe, int64_t entries, bool fixed) {
    if (layers > 0 && bpe > 0) fp.components.push_back({std::move(name), layers, bpe, entries, fixed});
  };
  const int64_t L = c.num_hidden_layers;
  if (c.arch == Arch::kV32) {
    add("mla_latent", L, MlaRecordBytes(c, f.mla), num_tokens, false);
    add("indexer_keys", L, IndexerKeyBytes(c.index_head_dim, f.indexer), num_tokens, false);
    return fp;
  }
  const int64_t csa = c.CountLayers(LayerKind::kCsa), hca = c.CountLayers(LayerKind::kHca);
  const int64_t entry = EntryBytes(c, f.entry);
  add("swa_window", L, entry, std::min(num_tokens, c.sliding_window), true);
  add("csa_entries", csa, entry, num_tokens / 4, false);
  add("csa_indexer_keys", csa, IndexerKeyBytes(c.index_head_dim, f.indexer), num_tokens / 4,
      false);
  add("hca_entries", hca, entry, num_tokens / 128, false);
  const int64_t state = num_tokens > 0 ? 1 : 0;  // allocated with the first token
  add("csa_compressor_state", csa,
      CompressorStateBytes(c, LayerKind::kCsa, f.compressor_state_bf16), state, true);
  add("hca_compressor_state", hca,
      CompressorStateBytes(c, LayerKind::kHca, f.compressor_state_bf16), state, true);
  return fp;
}

double GrowingBytesPerToken(const ModelConfig& c, const KvFormats& f) {
  if (c.arch == Arch::kV32) {
    return static_cast<double>(c.num_hidden_layers) *
           static_cast<double>(MlaRecordBytes(c, f.mla) +
                               IndexerKeyBytes(c.index_head_dim, f.indexer));
  }
  const double entry = static_cast<double>(EntryBytes(c, f.entry));
  const double key = static_cast<double>(IndexerKeyBytes(c.index_head_dim, f.indexer));
  return static_cast<double>(c.CountLayers(LayerKind::kCsa)) * (entry + key) / 4.0 +
         static_cast<double>(c.CountLayers(LayerKind::kHca)) * entry / 128.0;
}

}  // namespace dsv4::kv
