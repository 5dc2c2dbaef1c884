// Fast linears vs the scalar reference on random shapes, plus batch and thread invariance.
#include <algorithm>
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "core/fp8.h"
#include "core/rng.h"
#include "isa_test_util.h"
#include "kernels/cpu/fp4_tiles.h"
#include "kernels/cpu/linear.h"
#include "kernels/ref/linear_ref.h"

namespace dsv4::kernels {
namespace {

struct RandomLinear {
  LinearWeight w;
  std::vector<uint8_t> codes, scales;
  std::vector<BF16> bf16;
  std::vector<float> f32;
};

RandomLinear MakeLinear(LinearKind kind, int64_t out, int64_t in, Rng& rng) {
  RandomLinear r;
  r.w = {kind, out, in};
  switch (kind) {
    case LinearKind::kFp8Block:
      r.codes.resize(out * in);
      for (auto& c : r.codes) {
        do c = static_cast<uint8_t>(rng.Below(256)); while ((c & 0x7F) == 0x7F);
      }
      r.scales.resize(((out + 127) / 128) * ((in + 127) / 128));
      for (auto& s : r.scales) s = static_cast<uint8_t>(118 + rng.Below(4));  // 2^-9..2^-6
      break;
    case LinearKind::kFp4Row32:
      r.codes.resize(out * in / 2);
      for (auto& c : r.codes) c = static_cast<uint8_t>(rng.Below(256));
      r.scales.resize(out * in / 32);
      for (auto& s : r.scales) s = static_cast<uint8_t>(122 + rng.Below(4));
      break;
    case LinearKind::kNvfp4Row16:
      r.codes.resize(out * in / 2);
      for (auto& c : r.codes) c = static_cast<uint8_t>(rng.Below(256));
      r.scales.resize(out * in / 16);
      for (auto& s : r.scales) s = static_cast<uint8_t>(rng.Below(0x7F));  // finite, >= 0
      r.w.global_scale = static_cast<float>(rng.Uniform(1e-4, 1e-2));
      break;
    case LinearKind::kFp8AsBf16:
      r.codes.resize(out * in);
      for (auto& c : r.codes) {
        do c = static_cast<uint8_t>(rng.Below(256)); while ((c & 0x7F) == 0x7F);
      }
      r.scales.resize(((out + 127) / 128) * ((in + 127) / 128));
      for (auto& s : r.scales) s = static_cast<uint8_t>(118 + rng.Below(4));
      break;
    case LinearKind::kBf16:
      r.bf16.resize(out * in);
      for (auto& v : r.bf16) v = F32ToBf16(static_cast<float>(rng.Normal() / std::sqrt(in)));
      break;
    case LinearKind::kF32:
      r.f32.resize(out * in);
      for (auto& v : r.f32) v = static_cast<float>(rng.Normal() / std::sqrt(in));
      break;
  }
  r.w.codes = r.codes.data();
  r.w.scales = r.scales.data();
  r.w.bf16 = r.bf16.data();
  r.w.f32 = r.f32.data();
  return r;
}

std::vector<BF16> RandomInput(int64_t n, Rng& rng) {
  std::vector<BF16> x(n);
  for (auto& v : x) v = F32ToBf16(static_cast<float>(rng.Normal() * std::exp(rng.Uniform(-3, 3))));
  return x;
}

class LinearKinds : public ::testing::TestWithParam<LinearKind> {};

TEST_P(LinearKinds, FastMatchesReferenceOnRandomShapes) {
  Workspace ws;
  Rng rng(42);
  ThreadPool pool(2);
  for (int trial = 0; trial < 12; ++trial) {
    const int64_t in = 128 * (1 + rng.Below(4));
    const int64_t out = 1 + rng.Below(300);
    const int64_t rows = 1 + rng.Below(5);
    RandomLinear lin = MakeLinear(GetParam(), out, in, rng);
    std::vector<BF16> x = RandomInput(rows * in, rng);
    std::vector<BF16> y_ref(rows * out), y_fast(rows * out);
    ref::Linear(lin.w, x.data(), rows, y_ref.data());
    Linear(pool, lin.w, x.data(), rows, y_fast.data(), &ws);
    for (int64_t i = 0; i < rows * out; ++i) {
      const float a = Bf16ToF32(y_ref[i]), b = Bf16ToF32(y_fast[i]);
      // Different FP32 summation order, then BF16 rounding: at most ~1 BF16 ulp apart.
      EXPECT_NEAR(a, b, std::abs(a) * 1.0e-2f + 1e-6f) << "trial " << trial << " i " << i;
    }
  }
}

TEST_P(LinearKinds, BatchAndThreadInvariant) {
  Workspace ws;
  ScopedFineSplit split;  // so that two threads really share the outputs
  Rng rng(7);
  const int64_t in = 256, out = 77, rows = 9;
  RandomLinear lin = MakeLinear(GetParam(), out, in, rng);
  std::vector<BF16> x = RandomInput(rows * in, rng);
  ThreadPool one(1), two(2);
  std::vector<BF16> all(rows * out), single(out), threaded(rows * out);
  Linear(one, lin.w, x.data(), rows, all.data(), &ws);
  Linear(two, lin.w, x.data(), rows, threaded.data(), &ws);
  for (int64_t r = 0; r < rows; ++r) {
    Linear(two, lin.w, x.data() + r * in, 1, single.data(), &ws);
    for (int64_t n = 0; n < out; ++n) {
      ASSERT_EQ(all[r * out + n].bits, single[n].bits) << r << "," << n;
      ASSERT_EQ(all[r * out + n].bits, threaded[r * out + n].bits);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Kinds, LinearKinds,
                         ::testing::Values(LinearKind::kFp8Block, LinearKind::kFp4Row32,
                                           LinearKind::kNvfp4Row16, LinearKind::kBf16,
                                           LinearKind::kFp8AsBf16));

// NVFP4: the reference states the canonical order, so fast and reference agree bit for bit.
TEST(LinearNvfp4, FastEqualsReferenceBitForBit) {
  Workspace ws;
  Rng rng(11);
  ThreadPool pool(2);
  for (int trial = 0; trial < 8; ++trial) {
    const int64_t in = 128 * (1 + rng.Below(4)), out = 1 + rng.Below(100), rows = 1 + rng.Below(4);
    RandomLinear lin = MakeLinear(LinearKind::kNvfp4Row16, out, in, rng);
    std::vector<BF16> x = RandomInput(rows * in, rng);
    std::vector<BF16> y_ref(rows * out), y_fast(rows * out);
    ref::Linear(lin.w, x.data(), rows, y_ref.data());
    Linear(pool, lin.w, x.data(), rows, y_fast.data(), &ws);
    for (int64_t i = 0; i < rows * out; ++i) ASSERT_EQ(y_ref[i].bits, y_fast[i].bits) << i;
  }
}

// The lossless MXFP4 -> NVFP4 transcode (spec §11.5) gives the MXFP4 kernel's bits: the
// canonical NVFP4 order keeps the MXFP4 lanes and chunks. On every ISA, in the checkpoint
// layout and over the FP4 tiles (the AVX-512 BF16 kernels of both formats), one input row
// and several.
TEST(LinearNvfp4, TranscodedMxfp4GivesTheSameBits) {
  Workspace ws;
  Rng rng(5);
  ThreadPool pool(2);
  const int64_t in = 384, out = 45;
  RandomLinear mx = MakeLinear(LinearKind::kFp4Row32, out, in, rng);
  int max_e = -127;
  for (uint8_t b : mx.scales) max_e = std::max(max_e, static_cast<int>(b) - 127);
  const int g = 8 - max_e;
  std::vector<uint8_t> e4m3(2 * mx.scales.size());
  for (size_t i = 0; i < mx.scales.size(); ++i) {
    e4m3[2 * i] = e4m3[2 * i + 1] = F32ToE4M3(std::ldexp(1.0f, mx.scales[i] - 127 + g));
  }
  LinearWeight nv{LinearKind::kNvfp4Row16, out, in, mx.codes.data(), e4m3.data()};
  nv.global_scale = std::ldexp(1.0f, -g);
  std::vector<uint8_t> tiles(static_cast<size_t>(Fp4TilesBytes(out, in)));
  RepackFp4Tiles(mx.codes.data(), out, in, tiles.data());
  for (int64_t rows : {1, 3, 6}) {
    std::vector<BF16> x = RandomInput(rows * in, rng);
    std::vector<BF16> y_ref(rows * out);
    ref::Linear(nv, x.data(), rows, y_ref.data());
    for (Isa isa : SupportedIsas()) {
      ScopedIsa scoped(isa);
      for (bool tiled : {false, true}) {
        LinearWeight m = mx.w, n = nv;
        if (tiled) {
          m.codes = n.codes = nullptr;
          m.fp4_tiles = n.fp4_tiles = tiles.data();
        }
        std::vector<BF16> y_mx(rows * out), y_nv(rows * out);
        Linear(pool, m, x.data(), rows, y_mx.data(), &ws);
        Linear(pool, n, x.data(), rows, y_nv.data(), &ws);
        for (int64_t i = 0; i < rows * out; ++i) {
          ASSERT_EQ(y_mx[i].bits, y_nv[i].bits)
              << IsaName(isa) << (tiled ? " tiles" : "") << " rows " << rows << " element " << i;
          ASSERT_EQ(y_mx[i].bits, y_ref[i].bits)
              << IsaName(isa) << (tiled ? " tiles" : "") << " rows " << rows << " element " << i;
        }
      }
    }
  }
}

TEST(LinearF32, FastMatchesReference) {
  Workspace ws;
  Rng rng(3);
  ThreadPool pool(2);
  RandomLinear lin = MakeLinear(LinearKind::kF32, 50, 300, rng);
  std::vector<float> x(3 * 300);
  for (auto& v : x) v = static_cast<float>(rng.Normal());
  std::vector<float> a(3 * 50), b(3 * 50);
  ref::LinearF32(lin.w, x.data(), 3, a.data());
  LinearF32(pool, lin.w, x.data(), 3, b.data(), &ws);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-4f * (1 + std::abs(a[i])));
}

TEST(LinearRef, Fp8MatchesHandComputedBlockFormula) {
  // One output, 256 inputs: two K blocks with different activation scales.
  std::vector<uint8_t> codes(256, 0x38);  // every weight code = 1.0
  std::vector<uint8_t> scales = {126, 125};  // tile scales 0.5 and 0.25 (only col 0.. used)
  LinearWeight w{LinearKind::kFp8Block, 1, 256, codes.data(), scales.data()};
  std::vector<BF16> x(256, F32ToBf16(1.0f));
  for (int k = 128; k < 256; ++k) x[k] = F32ToBf16(2.0f);
  BF16 y;
  ref::Linear(w, x.data(), 1, &y);
  // Block 0: 128 x 1.0 -> sum of codes; with pow2 act scales the product is exact:
  // 128 * 1.0 * 0.5 + 128 * 2.0 * 0.25 = 64 + 64.
  EXPECT_EQ(Bf16ToF32(y), 128.0f);
}

}  // namespace
}  // namespace dsv4::kernels
