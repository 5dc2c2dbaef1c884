// FP4 (kFp4Row32) weight codes repacked at load time into the layout the AVX-512 BF16 GEMV
// reads with one plain 64-byte load and one VPERMW per 32 weights (the row-major checkpoint
// layout needs two byte permutes and two broadcasts per 32, which made the kernel
// shuffle-bound at ~0.4 of the memory roofline). Same size as the packed codes (rows padded to
// a multiple of 16); the E8M0 scales stay in the checkpoint layout.
//
// Layout. Rows form tiles of 16 (tile T: rows 16T..16T+15, missing rows padded with code 0),
// a tile's rows form 8 pairs (pair p: row a = 16T+p, row b = 16T+p+8), and each pair's columns
// form blocks of 64. Block (T, p, B) is 64 bytes at ((T*8 + p) * (in/64) + B) * 64: 32
// little-endian 16-bit words, word t holding 4 nibbles, nibble i (bits 4i..4i+3) for register
// i (column group 64B + 16i .. +15). In register i, word t sits in 32-bit lane L = t/2; even L
// belong to row a, odd L to row b; both are canonical lane j = L/2 (kernels::Dot8: column k
// goes to lane k mod 8); the high word (t odd) holds column 16i + j of the block, the low word
// column 16i + j + 8, so VDPBF16PS adds a lane's two products in ascending column order.
#pragma once

#include <cstdint>

namespace dsv4::kernels {

// Whether a [out, in] FP4 matrix can be repacked (in a positive multiple of 64).
bool Fp4TilesSupported(int64_t out, int64_t in);

// Bytes of the repacked codes: ceil(out/16) * 16 * in/2.
int64_t Fp4TilesBytes(int64_t out, int64_t in);

// codes: packed E2M1 [out, in/2] (low nibble = even column) -> tiles [Fp4TilesBytes].
void RepackFp4Tiles(const uint8_t* codes, int64_t out, int64_t in, uint8_t* tiles);

// The packed codes of row n (in/2 bytes, checkpoint layout) recovered from the tiles.
void Fp4TilesRow(const uint8_t* tiles, int64_t in, int64_t n, uint8_t* row_codes);

}  // namespace dsv4::kernels
