// The FP4 tile layout: repacking is lossless (every row comes back), and an MXFP4 or NVFP4
// linear over the tiles gives the bits of the scalar linear over the checkpoint layout on
// every ISA, for any shape the layout supports (including partial tiles and batches).
#include "kernels/cpu/fp4_tiles.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/rng.h"
#include "isa_test_util.h"
#include "kernels/cpu/linear.h"
#include "kernels/ref/linear_ref.h"

namespace dsv4::kernels {
namespace {

TEST(Fp4Tiles, RepackingIsLossless) {
  Rng rng(11);
  for (int trial = 0; trial < 20; ++trial) {
    const int64_t out = 1 + rng.Below(70), in = 64 * (1 + rng.Below(6));
    std::vector<uint8_t> codes(static_cast<size_t>(out * in / 2));
    for (auto& c : codes) c = static_cast<uint8_t>(rng.Below(256));
    std::vector<uint8_t> tiles(static_cast<size_t>(Fp4TilesBytes(out, in)), 0xAA);
    RepackFp4Tiles(codes.data(), out, in, tiles.data());
    std::vector<uint8_t> row(static_cast<size_t>(in / 2));
    for (int64_t n = 0; n < out; ++n) {
      Fp4TilesRow(tiles.data(), in, n, row.data());
      for (int64_t b = 0; b < in / 2; ++b) {
        ASSERT_EQ(row[b], codes[n * in / 2 + b]) << "out " << out << " in " << in << " row " << n;
      }
    }
    for (int64_t n = out; n < (out + 15) / 16 * 16; ++n) {  // padding rows hold code 0
      Fp4TilesRow(tiles.data(), in, n, row.data());
      for (uint8_t b : row) ASSERT_EQ(b, 0);
    }
  }
  EXPECT_TRUE(Fp4TilesSupported(1, 64));
  EXPECT_FALSE(Fp4TilesSupported(16, 96));
  EXPECT_EQ(Fp4TilesBytes(17, 128), 32 * 64);
}

// Scales of an MXFP4 (E8M0 per 32) or NVFP4 (E4M3 per 16, any finite code: zeros, the
// subnormals 0x01-0x07, the maximum 0x7E = 448 and negative codes) [out, in] matrix.
// `extreme`: MXFP4 adds the E8M0 extremes 0 and 254; NVFP4 draws every finite code instead
// of the ordinary range 0x30-0x4F.
std::vector<uint8_t> RandomScales(LinearKind kind, int64_t out, int64_t in, bool extreme,
                                  Rng& rng) {
  const bool nv = kind == LinearKind::kNvfp4Row16;
  std::vector<uint8_t> scales(static_cast<size_t>(out * in / (nv ? 16 : 32)));
  for (auto& s : scales) {
    if (!nv) {
      s = static_cast<uint8_t>(extreme && rng.Below(8) == 0 ? (rng.Below(2) ? 0 : 254)
                                                             : 110 + rng.Below(20));
    } else if (!extreme) {
      s = static_cast<uint8_t>(0x30 + rng.Below(0x20));
    } else {
      do s = static_cast<uint8_t>(rng.Below(256));
      while ((s & 0x7F) == 0x7F);  // NaN: refused at load
      if (rng.Below(8) == 0) s = static_cast<uint8_t>(rng.Below(2) ? rng.Below(8) : 0x7E);
    }
  }
  return scales;
}

// MXFP4 and NVFP4 (the same codes, and tiles): every ISA over the tiles gives the scalar bits
// of the checkpoint layout, which for NVFP4 are also the plain reference's; one input row
// and several (the multi-row kernels), partial tiles, and NVFP4 global scales from where b
// underflows to where the lane sums overflow, of both signs.
TEST(Fp4Tiles, LinearOverTilesMatchesTheCheckpointLayoutOnEveryIsa) {
  Workspace ws;
  Rng rng(12);
  ThreadPool pool(2);
  ScopedFineSplit split;
  const float globals[] = {1.37e-38f, 2.9e-30f, 3.1e-3f, 1.0f / 4096, 0.7f, 1.0f, 5.3e4f, 1.1e33f};
  for (LinearKind kind : {LinearKind::kFp4Row32, LinearKind::kNvfp4Row16}) {
    for (int trial = 0; trial < 32; ++trial) {
      const int64_t out = 1 + rng.Below(90), in = 128 * (1 + rng.Below(9));
      const int64_t rows = trial % 3 == 0 ? 1 : 1 + rng.Below(9);
      std::vector<uint8_t> codes(static_cast<size_t>(out * in / 2));
      for (auto& c : codes) c = static_cast<uint8_t>(rng.Below(256));
      const std::vector<uint8_t> scales = RandomScales(kind, out, in, trial % 4 == 3, rng);
      std::vector<uint8_t> tiles(static_cast<size_t>(Fp4TilesBytes(out, in)));
      RepackFp4Tiles(codes.data(), out, in, tiles.data());
      LinearWeight plain{kind, out, in, codes.data(), scales.data()};
      if (kind == LinearKind::kNvfp4Row16) {
        const float g = trial % 2 == 0 ? 1.0f / 4096 : globals[(trial / 2) % 8];
        plain.global_scale = trial % 8 == 5 ? -g : g;
      }
      LinearWeight tiled = plain;
      tiled.codes = nullptr;
      tiled.fp4_tiles = tiles.data();
      std::vector<BF16> x(static_cast<size_t>(rows * in));
      for (auto& v : x) {
        v = F32ToBf16(static_cast<float>(rng.Normal() * std::exp(rng.Uniform(-3, 3))));
      }
      std::vector<BF16> expected(static_cast<size_t>(rows * out));
      {
        ScopedIsa scalar(Isa::kScalar);
        Linear(pool, plain, x.data(), rows, expected.data(), &ws);
      }
      const std::string what = std::string(kind == LinearKind::kFp4Row32 ? "MXFP4" : "NVFP4") +
                               " trial " + std::to_string(trial) + " out " + std::to_string(out) +
                               " in " + std::to_string(in) + " rows " + std::to_string(rows);
      if (kind == LinearKind::kNvfp4Row16) {
        std::vector<BF16> y(expected.size());
        ref::Linear(plain, x.data(), rows, y.data());
        for (size_t i = 0; i < y.size(); ++i) {
          ASSERT_EQ(y[i].bits, expected[i].bits) << "reference " << what << " element " << i;
        }
      }
      for (Isa isa : SupportedIsas()) {
        ScopedIsa scoped(isa);
        for (const LinearWeight* w : {&tiled, &plain}) {
          std::vector<BF16> y(expected.size());
          Linear(pool, *w, x.data(), rows, y.data(), &ws);
          for (size_t i = 0; i < y.size(); ++i) {
            ASSERT_EQ(y[i].bits, expected[i].bits)
                << IsaName(isa) << (w == &tiled ? " tiles " : " checkpoint layout ") << what
                << " element " << i;
          }
        }
      }
    }
  }
}

// MXFP4 over the tiles at decode row counts (1, 2, 3: the AVX-512 BF16 register passes; 16, 17,
// 64: the passes of 4 rows with both scales folded into the operands, and a 1-row tail) on
// odd shapes (partial tiles, k-block tails): every ISA gives the scalar bits of the
// checkpoint layout, also where one weight scale of a tile leaves the folded range (that tile
// runs unfolded) and where an input scale does (a huge input value: the call runs unfolded).
TEST(Fp4Tiles, ManyRowsMatchTheCheckpointLayoutOnEveryIsa) {
  Workspace ws;
  Rng rng(16);
  ThreadPool pool(2);
  ScopedFineSplit split;
  // 65, 130, 259: over several of the front end's row blocks (kFp4RowBlock = 64 rows at the
  // widths given them; at in <= 640 the default block is 64-128 rows).
  // 1-4: in registers; 5+: over the L1 panel.
  const int64_t row_counts[] = {1, 2, 3, 4, 5, 8, 16, 17, 64, 65, 130, 259};
  const int64_t wide_in[] = {4096, 2048, 256};
  for (int trial = 0; trial < 36; ++trial) {
    const int64_t rows = row_counts[trial % 12];
    const int mode = trial / 12;  // 0: in range, 1: one scale out of range, 2: a huge input
    const int64_t out = 1 + rng.Below(rows > 64 ? 24 : 40);
    const int64_t in = rows > 64 ? wide_in[trial % 12 - 9] : 128 * (1 + rng.Below(5));
    std::vector<uint8_t> codes(static_cast<size_t>(out * in / 2));
    for (auto& c : codes) c = static_cast<uint8_t>(rng.Below(256));
    std::vector<uint8_t> scales = RandomScales(LinearKind::kFp4Row32, out, in, false, rng);
    if (mode == 1) scales[rng.Below(scales.size())] = rng.Below(2) == 0 ? 2 : 250;
    std::vector<uint8_t> tiles(static_cast<size_t>(Fp4TilesBytes(out, in)));
    RepackFp4Tiles(codes.data(), out, in, tiles.data());
    LinearWeight plain{LinearKind::kFp4Row32, out, in, codes.data(), scales.data()};
    LinearWeight tiled = plain;
    tiled.codes = nullptr;
    tiled.fp4_tiles = tiles.data();
    std::vector<BF16> x(static_cast<size_t>(rows * in));
    for (auto& v : x) v = F32ToBf16(static_cast<float>(rng.Normal() * std::exp(rng.Uniform(-3, 3))));
    for (size_t i = 0; i < x.size(); i += 41) x[i] = F32ToBf16(i % 2 == 0 ? 0.0f : -0.0f);
    if (mode == 2) x[rng.Below(x.size())] = F32ToBf16(3e30f);
    std::vector<BF16> expected(static_cast<size_t>(rows * out));
    {
      ScopedIsa scalar(Isa::kScalar);
      Linear(pool, plain, x.data(), rows, expected.data(), &ws);
    }
    for (Isa isa : SupportedIsas()) {
      ScopedIsa scoped(isa);
      std::vector<BF16> y(expected.size());
      Linear(pool, tiled, x.data(), rows, y.data(), &ws);
      for (size_t i = 0; i < y.size(); ++i) {
        ASSERT_EQ(y[i].bits, expected[i].bits)
            << IsaName(isa) << " trial " << trial << " rows " << rows << " out " << out
            << " in " << in << " element " << i;
      }
    }
  }
}

}  // namespace
}  // namespace dsv4::kernels
