// The FP4 tile layout: repacking is lossless (every row comes back), and a linear over the
// tiles gives the bits of the linear over the checkpoint layout on every ISA, for any shape
// the layout supports (including partial tiles and batches).
#include "kernels/cpu/fp4_tiles.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/rng.h"
#include "isa_test_util.h"
#include "kernels/cpu/linear.h"

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

TEST(Fp4Tiles, LinearOverTilesMatchesTheCheckpointLayoutOnEveryIsa) {
  Workspace ws;
  Rng rng(12);
  ThreadPool pool(2);
  ScopedFineSplit split;
  for (int trial = 0; trial < 16; ++trial) {
    const int64_t out = 1 + rng.Below(90), in = 128 * (1 + rng.Below(5));
    const int64_t rows = trial % 3 == 0 ? 1 : 1 + rng.Below(7);
    std::vector<uint8_t> codes(static_cast<size_t>(out * in / 2)), scales(out * in / 32);
    for (auto& c : codes) c = static_cast<uint8_t>(rng.Below(256));
    for (auto& s : scales) {
      s = static_cast<uint8_t>(trial % 4 == 3 && rng.Below(8) == 0 ? (rng.Below(2) ? 0 : 254)
                                                                    : 110 + rng.Below(20));
    }
    std::vector<uint8_t> tiles(static_cast<size_t>(Fp4TilesBytes(out, in)));
    RepackFp4Tiles(codes.data(), out, in, tiles.data());
    LinearWeight plain{LinearKind::kFp4Row32, out, in, codes.data(), scales.data()};
    LinearWeight tiled = plain;
    tiled.codes = nullptr;
    tiled.fp4_tiles = tiles.data();
    std::vector<BF16> x(static_cast<size_t>(rows * in));
    for (auto& v : x) v = F32ToBf16(static_cast<float>(rng.Normal() * std::exp(rng.Uniform(-3, 3))));
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
            << IsaName(isa) << " trial " << trial << " out " << out << " in " << in << " rows "
            << rows << " element " << i;
      }
    }
  }
}

}  // namespace
}  // namespace dsv4::kernels
