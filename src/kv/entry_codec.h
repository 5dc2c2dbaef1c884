// Lossless packing of the values the V4 model caches (spec §13.1). The model rounds these
// values onto FP8/FP4 grids anyway (the reference's "simulation"); storing the codes and
// power-of-two scales instead of BF16 keeps them exactly and costs 584 B instead of 1024 B
// per 512-d entry, and 68 B instead of 256 B per 128-d indexer key.
#pragma once

#include <cstdint>

#include "core/bf16.h"

namespace dsv4::kv {

// KV entry layout: [d_nope E4M3 codes][d_nope/64 E8M0 scales][rope BF16 x rope_dim][pad to 8].
// Encode FP8-quantises dims [0, d_nope) in blocks of 64 (spec §4.4 simulation semantics:
// amax floor 1e-4, power-of-two scale, RNE) and keeps the RoPE dims as BF16.
void EncodeKvEntry(const BF16* x, int64_t d_nope, int64_t rope_dim, uint8_t* out);
// Decodes to the exact BF16 values the simulation produces, as FP32 [d_nope + rope_dim].
void DecodeKvEntry(const uint8_t* in, int64_t d_nope, int64_t rope_dim, float* out);

// Indexer key layout: [dim/2 packed E2M1 (low nibble first)][dim/32 E8M0 scales].
// Encode FP4-quantises in blocks of 32 (spec §4.5: amax floor 6*2^-126, RNE).
void EncodeIndexerKeyFp4(const BF16* x, int64_t dim, uint8_t* out);
void DecodeIndexerKeyFp4(const uint8_t* in, int64_t dim, float* out);

}  // namespace dsv4::kv
