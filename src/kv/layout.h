// KV-cache byte layout: bytes per entry of every cache component and the per-sequence
// footprint at a context length (spec §13.1, §14.5; capacity.md §3). One source of truth for
// the cache, `dsv4 inspect`, the benches and the capacity planner.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "checkpoint/config.h"

namespace dsv4::kv {

// Storage of a 512-d V4 KV entry (window rows and compressed entries).
enum class EntryFormat {
  kFp8,   // d_nope E4M3 + d_nope/64 E8M0 + rope BF16, padded to 8 bytes (584 at d=512)
  kBf16,  // head_dim BF16 (1024 at d=512), the reference's own buffers
};
// Storage of an indexer key (V4 CSA compressed keys, V3.2 token keys).
enum class IndexerFormat {
  kFp4,   // dim/2 packed E2M1 + dim/32 E8M0 (68 at 128)
  kFp8,   // dim E4M3 + one FP32 scale (132 at 128)
  kBf16,  // dim BF16 (256 at 128)
  kNone,  // left out (only to reproduce published arithmetic that forgot it)
};
// Storage of a V3.2 MLA latent record.
enum class MlaFormat {
  kFp8,   // kv_lora E4M3 + kv_lora/128 FP32 scales + rope BF16 (656 at 512/64)
  kBf16,  // (kv_lora + rope) BF16 (1152)
  kFp8NoScale,  // kv_lora E4M3 + rope BF16, no scales (576 + 64 = 640; published variants)
  kV4Entry,     // 584 B, as some analyses assumed for V3.2 (reproduces "35.6 GB")
  kAllFp8NoScale,  // (kv_lora + rope) one byte each, no scales (576 at 512/64; the "naive"
                   // variant of capacity.md §3.1, 62 x 576 B x 10^6 = 35.7 GB near miss)
};

struct KvFormats {
  EntryFormat entry = EntryFormat::kFp8;
  IndexerFormat indexer = IndexerFormat::kFp4;  // V4 default; V3.2 uses kFp8
  MlaFormat mla = MlaFormat::kFp8;
  // The reference keeps compressor state in FP32; BF16 is a serving-engine option.
  bool compressor_state_bf16 = false;
};
// The formats the engine stores: V4 FP8 entries + FP4 indexer keys; V3.2 FP8 MLA + FP8 keys.
KvFormats DefaultKvFormats(checkpoint::Arch arch);

int64_t EntryBytes(const checkpoint::ModelConfig& c, EntryFormat f);
int64_t IndexerKeyBytes(int64_t dim, IndexerFormat f);
int64_t MlaRecordBytes(const checkpoint::ModelConfig& c, MlaFormat f);
// Compressor streaming state of one layer of kind `k` (V4): kv + score rows of the main
// compressor (and the indexer's for CSA). 80 KiB CSA / 512 KiB HCA at Flash/Pro sizes.
int64_t CompressorStateBytes(const checkpoint::ModelConfig& c, checkpoint::LayerKind k, bool bf16);

// One component of a sequence's cache, summed over the layers that have it.
struct KvComponent {
  std::string name;         // "swa_window", "csa_entries", "csa_indexer_keys", ...
  int64_t layers = 0;       // layers that hold it
  int64_t bytes_per_entry = 0;
  int64_t entries_per_layer = 0;  // at the given context length
  bool fixed = false;       // does not grow with the context (window ring, compressor state)
  int64_t bytes() const { return layers * bytes_per_entry * entries_per_layer; }
};

// The KV footprint of one sequence of `num_tokens` tokens (main stack, no MTP layer).
struct KvFootprint {
  int64_t num_tokens = 0;
  std::vector<KvComponent> components;
  int64_t total_bytes() const;
  int64_t growing_bytes() const;  // components with fixed == false
  int64_t fixed_bytes() const;
};
KvFootprint ComputeKvFootprint(const checkpoint::ModelConfig& c, const KvFormats& f,
                               int64_t num_tokens);

// Asymptotic bytes per token (growing components only, no window), e.g. 3,514.25 for Flash.
double GrowingBytesPerToken(const checkpoint::ModelConfig& c, const KvFormats& f);

}  // namespace dsv4::kv
