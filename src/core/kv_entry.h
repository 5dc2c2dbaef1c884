// The packed formats of the values the models cache (spec §13.1, §14.5): the one definition of
// their byte layouts (offsets, sizes) and of encoding / decoding one entry. Core owns them
// because two layers read them: kv stores them (and sizes its pages from the byte counts), the
// kernels decode them in place (attention over packed entries, the indexer scans).
//
// The V4 model rounds these values onto FP8/FP4 grids anyway (the reference's "simulation");
// storing the codes and power-of-two scales instead of BF16 keeps them exactly and costs 584 B
// instead of 1024 B per 512-d entry, and 68 B instead of 256 B per 128-d indexer key. The
// V3.2 formats are lossless the same way: the latent is FP8-simulated per 128 with
// power-of-two scales before caching, and the indexer keys are FP8 with one scale in the
// reference itself.
//
// All functions are pure and thread-compatible; sizes are the caller's to get right.
#pragma once

#include <cstdint>

#include "core/bf16.h"

namespace dsv4 {

// V4 KV entry: [d_nope E4M3 codes][d_nope/64 E8M0 scales][rope BF16 x rope_dim][pad to 8]
// (584 B at 448 + 64). d_nope % 64 == 0.
struct KvEntryLayout {
  int64_t d_nope = 0;
  int64_t rope_dim = 0;

  static constexpr int64_t kScaleBlock = 64;  // values per E8M0 scale
  int64_t scales_offset() const { return d_nope; }
  int64_t rope_offset() const { return d_nope + d_nope / kScaleBlock; }
  int64_t used_bytes() const { return rope_offset() + 2 * rope_dim; }
  int64_t bytes() const { return (used_bytes() + 7) / 8 * 8; }
};

// Encode FP8-quantises dims [0, d_nope) in blocks of 64 (spec §4.4 simulation semantics:
// amax floor 1e-4, power-of-two scale, RNE) and keeps the RoPE dims as BF16. x: BF16
// [d_nope + rope_dim]; out: [KvEntryLayout::bytes()], the padding zeroed.
void EncodeKvEntry(const BF16* x, int64_t d_nope, int64_t rope_dim, uint8_t* out);
// Decodes to the exact BF16 values the simulation produces, as FP32 [d_nope + rope_dim].
void DecodeKvEntry(const uint8_t* in, int64_t d_nope, int64_t rope_dim, float* out);

// V4 indexer key: [dim/2 packed E2M1 (low nibble first)][dim/32 E8M0 scales] (68 B at 128).
struct IndexerKeyFp4Layout {
  int64_t dim = 0;  // a multiple of 32

  static constexpr int64_t kScaleBlock = 32;
  int64_t scales_offset() const { return dim / 2; }
  int64_t bytes() const { return dim / 2 + dim / kScaleBlock; }
};

// Encode FP4-quantises in blocks of 32 (spec §4.5: amax floor 6*2^-126, RNE).
void EncodeIndexerKeyFp4(const BF16* x, int64_t dim, uint8_t* out);
void DecodeIndexerKeyFp4(const uint8_t* in, int64_t dim, float* out);

// V3.2 MLA record (656 B at 512/64): [kv_lora E4M3 codes][kv_lora/128 FP32 scales][rope BF16].
// Encode FP8-quantises the latent in blocks of 128 (act_quant: amax floor 1e-4, power-of-two
// scale, RNE), which is exactly the corrected reference's FP8 simulation of c^KV, and keeps
// the RoPE key as BF16. latent: BF16 [kv_lora] (kv_lora % 128 == 0); rope: BF16 [rope_dim].
void EncodeMlaRecord(const BF16* latent, int64_t kv_lora, const BF16* rope, int64_t rope_dim,
                     uint8_t* out);
// The simulated latent values followed by the RoPE key, FP32 [kv_lora + rope_dim] (exact).
void DecodeMlaRecord(const uint8_t* in, int64_t kv_lora, int64_t rope_dim, float* out);

// V3.2 indexer key: [dim E4M3 codes][one FP32 scale, unaligned] (132 B at 128), one
// power-of-two scale for the whole key (act_quant with a block of `dim`).
inline int64_t IndexerKeyFp8Bytes(int64_t dim) { return dim + 4; }

// x: BF16 [dim].
void EncodeIndexerKeyFp8(const BF16* x, int64_t dim, uint8_t* out);
// Writes the code values (unscaled E4M3 values) FP32 [dim] and returns the key's scale; the
// key is codes × scale exactly.
float DecodeIndexerKeyFp8(const uint8_t* in, int64_t dim, float* codes);
// The key's scale alone.
float IndexerKeyFp8Scale(const uint8_t* in, int64_t dim);

}  // namespace dsv4
