#include "kernels/cpu/fp4_tiles.h"

#include <cstring>

#include "core/check.h"

namespace dsv4::kernels {
namespace {

// Where word t's nibble i of a block lives: the row of the pair (0: a, 1: b) and the column
// within the block.
struct Slot {
  int row;
  int column;
};

Slot SlotOf(int t, int i) {
  const int lane = t / 2, j = lane / 2;
  return {lane % 2, 16 * i + (t % 2 == 1 ? j : j + 8)};
}

uint8_t Nibble(const uint8_t* row_codes, int64_t column) {
  const uint8_t byte = row_codes[column / 2];
  return column % 2 == 0 ? (byte & 0x0F) : (byte >> 4);
}

// Byte offset of block (tile, pair, block) in the tiles.
int64_t BlockOffset(int64_t in, int64_t tile, int pair, int64_t block) {
  return ((tile * 8 + pair) * (in / 64) + block) * 64;
}

}  // namespace

bool Fp4TilesSupported(int64_t out, int64_t in) { return out > 0 && in > 0 && in % 64 == 0; }

int64_t Fp4TilesBytes(int64_t out, int64_t in) { return (out + 15) / 16 * 16 * (in / 2); }

void RepackFp4Tiles(const uint8_t* codes, int64_t out, int64_t in, uint8_t* tiles) {
  DSV4_CHECK(Fp4TilesSupported(out, in));
  const int64_t row_bytes = in / 2;
  const int64_t num_tiles = (out + 15) / 16;
  // Word t's nibble i comes from row (t/2) % 2 of the pair, column 16i + column_of[t].
  int column_of[32];
  for (int t = 0; t < 32; ++t) column_of[t] = SlotOf(t, 0).column;
  for (int64_t tile = 0; tile < num_tiles; ++tile) {
    for (int p = 0; p < 8; ++p) {
      const int64_t rows[2] = {tile * 16 + p, tile * 16 + p + 8};
      for (int64_t block = 0; block < in / 64; ++block) {
        uint8_t nibbles[2][64] = {};  // the block's 64 columns of rows a and b (padding: 0)
        for (int which = 0; which < 2; ++which) {
          if (rows[which] >= out) continue;
          const uint8_t* src = codes + rows[which] * row_bytes + block * 32;
          for (int b = 0; b < 32; ++b) {
            nibbles[which][2 * b] = src[b] & 0x0F;
            nibbles[which][2 * b + 1] = src[b] >> 4;
          }
        }
        uint8_t* dst = tiles + BlockOffset(in, tile, p, block);
        for (int t = 0; t < 32; ++t) {
          const uint8_t* n = nibbles[(t / 2) % 2] + column_of[t];
          dst[2 * t] = static_cast<uint8_t>(n[0] | (n[16] << 4));
          dst[2 * t + 1] = static_cast<uint8_t>(n[32] | (n[48] << 4));
        }
      }
    }
  }
}

void Fp4TilesRow(const uint8_t* tiles, int64_t in, int64_t n, uint8_t* row_codes) {
  DSV4_CHECK(in % 64 == 0 && n >= 0);
  const int64_t tile = n / 16;
  const int within = static_cast<int>(n % 16);
  const int pair = within % 8, which = within / 8;
  std::memset(row_codes, 0, static_cast<size_t>(in / 2));
  for (int64_t block = 0; block < in / 64; ++block) {
    const uint8_t* src = tiles + BlockOffset(in, tile, pair, block);
    for (int t = 0; t < 32; ++t) {
      const uint16_t word = static_cast<uint16_t>(src[2 * t] | (src[2 * t + 1] << 8));
      for (int i = 0; i < 4; ++i) {
        const Slot s = SlotOf(t, i);
        if (s.row != which) continue;
        const int64_t column = 64 * block + s.column;
        const uint8_t nibble = static_cast<uint8_t>((word >> (4 * i)) & 0x0F);
        row_codes[column / 2] |= static_cast<uint8_t>(column % 2 == 0 ? nibble : nibble << 4);
      }
    }
  }
}

}  // namespace dsv4::kernels
