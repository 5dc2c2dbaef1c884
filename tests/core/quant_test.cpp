// Block quantisation (core/quant.h) against a plain reference written here: amax in double,
// scale = 2^ceil(log2(fl32 product)) via std::log2, nearest grid point by search in double.
#include "core/quant.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "core/bf16.h"
#include "core/fp4.h"
#include "core/fp8.h"

namespace dsv4 {
namespace {

uint32_t Bits(float x) { return std::bit_cast<uint32_t>(x); }
double Abs(BF16 x) { return std::fabs(static_cast<double>(Bf16ToF32(x))); }

// Non-negative grid of a format: magnitudes of codes 0.. in increasing order, so that the index
// is the code (and an even index is an even mantissa).
struct Grid {
  std::vector<double> values;
  double max_code;
  float amax_floor;
};

const Grid& Fp8Grid() {
  static const Grid* grid = [] {
    auto* g = new Grid{{}, 448.0, 1e-4f};
    for (int c = 0; c < 0x7F; ++c) {
      const int exp = c >> 3, mant = c & 7;
      g->values.push_back(exp == 0 ? std::ldexp(mant, -9) : std::ldexp(1.0 + mant / 8.0, exp - 7));
    }
    return g;
  }();
  return *grid;
}

const Grid& Fp4Grid() {
  static const Grid grid{{0, 0.5, 1, 1.5, 2, 3, 4, 6}, 6.0, std::ldexp(6.0f, -126)};
  return grid;
}

// Index of the grid value nearest to a >= 0 (a <= max), ties to the even index.
size_t NearestIndex(double a, const Grid& g) {
  const auto it = std::lower_bound(g.values.begin(), g.values.end(), a);
  const size_t hi = static_cast<size_t>(it - g.values.begin());
  if (hi == 0) return 0;
  if (hi == g.values.size()) return hi - 1;
  const double d_lo = a - g.values[hi - 1], d_hi = g.values[hi] - a;
  if (d_lo < d_hi) return hi - 1;
  if (d_hi < d_lo) return hi;
  return (hi % 2 == 0) ? hi : hi - 1;
}

// The spec's scale: amax floored, product rounded to FP32, then 2^ceil(log2(product)).
double RefScale(double amax, const Grid& g) {
  const float a = static_cast<float>(std::max(amax, static_cast<double>(g.amax_floor)));
  const float product = a * (1.0f / static_cast<float>(g.max_code));
  return std::ldexp(1.0, static_cast<int>(std::ceil(std::log2(static_cast<double>(product)))));
}

// Signed grid value (in units of the scale) that x / s quantises to.
double RefQuantize(double x, double s, const Grid& g) {
  const double t = std::clamp(x / s, -g.max_code, g.max_code);
  return std::copysign(g.values[NearestIndex(std::fabs(t), g)], t);
}

// BF16 bits of y = q * s, which is exactly representable unless it rounded up past the FP32
// range (only for |x| >= 1.75 * 2^127), where the reference's FP32 multiply gives ±inf.
BF16 ExactBf16(double y) {
  const float f = static_cast<float>(y);
  if (std::fabs(y) > std::numeric_limits<float>::max()) {
    EXPECT_TRUE(std::isinf(f));
  } else {
    EXPECT_EQ(static_cast<double>(f), y);
  }
  EXPECT_EQ(Bits(f) & 0xFFFFu, 0u) << y << " is not a BF16 value";
  return BF16{static_cast<uint16_t>(Bits(f) >> 16)};
}

std::vector<BF16> RefSimulate(std::vector<BF16> x, size_t block, const Grid& g) {
  for (size_t b = 0; b < x.size(); b += block) {
    double amax = 0;
    for (size_t j = b; j < b + block; ++j) amax = std::max(amax, Abs(x[j]));
    const double s = RefScale(amax, g);
    for (size_t j = b; j < b + block; ++j) {
      x[j] = ExactBf16(RefQuantize(Bf16ToF32(x[j]), s, g) * s);
    }
  }
  return x;
}

BF16 MakeBf16(bool neg, int exp, uint32_t mant7) {  // (1 + mant7/128) * 2^exp, exp >= -126
  return F32ToBf16(std::ldexp((neg ? -1.0f : 1.0f) * (1.0f + mant7 / 128.0f), exp));
}

// One block of test data in one of several regimes: zeros, below the amax floor, wide dynamic
// range, huge, exact midpoints of the grid, arbitrary finite bit patterns.
void FillBlock(std::mt19937& rng, const Grid& g, std::span<BF16> blk) {
  const int mode = static_cast<int>(rng() % 6);
  const int base = static_cast<int>(rng() % 81) - 40;
  for (size_t j = 0; j < blk.size(); ++j) {
    const bool neg = rng() & 1;
    switch (mode) {
      case 0:  // zeros, both signs
        blk[j] = BF16{static_cast<uint16_t>(neg ? 0x8000 : 0)};
        break;
      case 1:  // tiny, incl. BF16 subnormals: the floor decides the scale
        blk[j] = F32ToBf16(std::ldexp(neg ? -1.0f : 1.0f, -(static_cast<int>(rng() % 124) + 10)));
        break;
      case 2:  // up to 2^14 of dynamic range: exercises the E4M3 subnormals
        blk[j] = MakeBf16(neg, base - static_cast<int>(rng() % 15), rng() % 128);
        break;
      case 3:  // near the top of the BF16 range
        blk[j] = MakeBf16(neg, 100 + static_cast<int>(rng() % 28), rng() % 128);
        break;
      case 4: {  // exact midpoints between neighbouring codes, one max-code element pins s
        const size_t c = rng() % (g.values.size() - 1);
        const double v = j == 0 ? g.max_code : (g.values[c] + g.values[c + 1]) / 2;
        blk[j] = ExactBf16(std::ldexp(neg ? -v : v, base / 4));
        break;
      }
      default: {  // any finite BF16
        uint16_t bits = 0x7F80;
        while ((bits & 0x7F80) == 0x7F80) bits = static_cast<uint16_t>(rng());
        blk[j] = BF16{bits};
      }
    }
  }
}

std::vector<BF16> RandomVector(std::mt19937& rng, const Grid& g, size_t num_blocks, size_t block) {
  std::vector<BF16> x(num_blocks * block);
  for (size_t b = 0; b < num_blocks; ++b) FillBlock(rng, g, std::span(x).subspan(b * block, block));
  return x;
}

// Simulating already-simulated data must change nothing. Blocks that overflowed to inf on the
// first pass are left out: inf poisons its block by design.
void ExpectIdempotent(const std::vector<BF16>& once, size_t block, bool fp4) {
  std::vector<BF16> twice = once;
  if (fp4) {
    Fp4SimulateInplace(twice);
  } else {
    Fp8SimulateInplace(twice, block);
  }
  for (size_t b = 0; b < once.size(); b += block) {
    if (std::any_of(once.begin() + b, once.begin() + b + block,
                    [](BF16 v) { return std::isinf(Bf16ToF32(v)); })) {
      continue;
    }
    for (size_t j = b; j < b + block; ++j) ASSERT_EQ(twice[j].bits, once[j].bits) << j;
  }
}

void ExpectSameBits(const std::vector<BF16>& got, const std::vector<BF16>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].bits, want[i].bits)
        << "element " << i << ": " << Bf16ToF32(got[i]) << " vs " << Bf16ToF32(want[i]);
  }
}

// ---- Ue8m0Scale ---------------------------------------------------------------------------

TEST(Ue8m0ScaleTest, HandValues) {
  EXPECT_EQ(Ue8m0Scale(448.0f, 448.0f), 1.0f);
  EXPECT_EQ(Ue8m0Scale(449.0f, 448.0f), 2.0f);
  EXPECT_EQ(Ue8m0Scale(896.0f, 448.0f), 2.0f);
  EXPECT_EQ(Ue8m0Scale(224.0f, 448.0f), 0.5f);
  EXPECT_EQ(Ue8m0Scale(1.0f, 448.0f), 0x1p-8f);    // 1/448 ≈ 2^-8.8
  EXPECT_EQ(Ue8m0Scale(1e-4f, 448.0f), 0x1p-22f);  // the FP8 floor: 2.23e-7 ≈ 2^-22.1
  EXPECT_EQ(Ue8m0Scale(6.0f, 6.0f), 1.0f);
  EXPECT_EQ(Ue8m0Scale(7.0f, 6.0f), 2.0f);
  EXPECT_EQ(Ue8m0Scale(3.0f, 6.0f), 0.5f);
  EXPECT_EQ(Ue8m0Scale(kFp4AmaxFloor, 6.0f), 0x1p-126f);  // the FP4 floor
  EXPECT_EQ(Ue8m0Scale(std::numeric_limits<float>::infinity(), 448.0f),
            std::numeric_limits<float>::infinity());
}

TEST(Ue8m0ScaleTest, ReadsTheBitsOfTheFp32Product) {
  // With max_code 1 the product is amax itself: a single set mantissa bit (the LSB) rounds up.
  EXPECT_EQ(Ue8m0Scale(1.0f, 1.0f), 1.0f);
  EXPECT_EQ(Ue8m0Scale(0x1.000002p+0f, 1.0f), 2.0f);
  EXPECT_EQ(Ue8m0Scale(0x1.fffffep-1f, 1.0f), 1.0f);
  EXPECT_EQ(Ue8m0Scale(0x1.000002p-100f, 1.0f), 0x1p-99f);
  // The reciprocal is rounded to FP32 before the multiply: amax = 25 + 1 ulp times fl32(1/25)
  // rounds to exactly 1, whereas amax / 25 would be 1 + 2^-23 and give 2.
  EXPECT_EQ(Ue8m0Scale(0x1.900002p+4f, 25.0f), 1.0f);
}

TEST(Ue8m0ScaleTest, ExactPowersStayAndAnythingAboveRoundsUp) {
  for (int k = -20; k <= 110; ++k) {
    const float amax = std::ldexp(448.0f, k);
    EXPECT_EQ(Ue8m0Scale(amax, 448.0f), std::ldexp(1.0f, k)) << k;
    EXPECT_EQ(Ue8m0Scale(amax * 1.01f, 448.0f), std::ldexp(1.0f, k + 1)) << k;
    EXPECT_EQ(Ue8m0Scale(std::ldexp(6.0f, k), 6.0f), std::ldexp(1.0f, k)) << k;
    EXPECT_EQ(Ue8m0Scale(std::ldexp(6.5f, k), 6.0f), std::ldexp(1.0f, k + 1)) << k;
  }
}

TEST(Ue8m0ScaleTest, MatchesLog2ReferenceOnRandomAmax) {
  std::mt19937 rng(10);
  for (int i = 0; i < 300'000; ++i) {
    // Normal FP32 values from 2^-100 to 2^110, any mantissa.
    const uint32_t exp = static_cast<uint32_t>(27 + rng() % 211);
    const float amax =
        std::bit_cast<float>((exp << 23) | (static_cast<uint32_t>(rng()) & 0x007FFFFFu));
    for (const Grid* g : {&Fp8Grid(), &Fp4Grid()}) {
      const float product = amax * (1.0f / static_cast<float>(g->max_code));
      // log2 in double: a float log2 rounds 2^k * (1 + 2^-23) to exactly k.
      const double want =
          std::ldexp(1.0, static_cast<int>(std::ceil(std::log2(static_cast<double>(product)))));
      ASSERT_EQ(Ue8m0Scale(amax, static_cast<float>(g->max_code)), want) << amax;
    }
  }
}

TEST(Ue8m0ScaleDeathTest, RejectsNonPositiveAmax) {
  EXPECT_DEATH(Ue8m0Scale(0.0f, 448.0f), "check failed");
  EXPECT_DEATH(Ue8m0Scale(std::numeric_limits<float>::quiet_NaN(), 448.0f), "check failed");
}

// ---- FP8 / FP4 simulation -----------------------------------------------------------------

TEST(Fp8SimulateTest, HandExample) {
  std::vector<BF16> x(64, BF16{});
  x[0] = F32ToBf16(448.0f);
  x[1] = F32ToBf16(0.1f);       // bf16 0.10009765625 -> E4M3 1.625 * 2^-4
  x[2] = F32ToBf16(-300.0f);    // -300 -> tie between 288 and 320: even mantissa, 288
  x[3] = F32ToBf16(0x1p-10f);   // tie between 0 and 2^-9 -> +0
  x[4] = F32ToBf16(-0x1p-12f);  // rounds to -0
  Fp8SimulateInplace(x, 64);
  EXPECT_EQ(Bf16ToF32(x[0]), 448.0f);
  EXPECT_EQ(Bf16ToF32(x[1]), 0.1015625f);
  EXPECT_EQ(Bf16ToF32(x[2]), -288.0f);
  EXPECT_EQ(x[3].bits, 0x0000);
  EXPECT_EQ(x[4].bits, 0x8000);
  EXPECT_EQ(x[5].bits, 0x0000);
}

TEST(Fp8SimulateTest, ScaleIsPerBlock) {
  // Block 0 has amax 1 (s = 2^-8), block 1 amax 1000 (s = 4): 1.03 keeps 8 bits of precision in
  // block 0 only.
  std::vector<BF16> x(128, F32ToBf16(1.03f));
  x[64] = F32ToBf16(1000.0f);
  Fp8SimulateInplace(x, 64);
  EXPECT_EQ(Bf16ToF32(x[0]), 1.0f);      // 1.03 on the grid 1 + k/8
  EXPECT_EQ(Bf16ToF32(x[65]), 1.0f);     // 1.03/4 -> 0.25 (grid 0.25 + k/32)
  EXPECT_EQ(Bf16ToF32(x[64]), 1024.0f);  // 250 -> 256
}

TEST(Fp8SimulateTest, MatchesReferenceOnRandomVectors) {
  std::mt19937 rng(11);
  for (size_t block : {size_t{1}, size_t{32}, size_t{64}, size_t{128}}) {
    for (size_t num_blocks : {1, 2, 3, 7, 33}) {
      for (int trial = 0; trial < 60; ++trial) {
        std::vector<BF16> x = RandomVector(rng, Fp8Grid(), num_blocks, block);
        const std::vector<BF16> want = RefSimulate(x, block, Fp8Grid());
        Fp8SimulateInplace(x, block);
        ExpectSameBits(x, want);
      }
    }
  }
}

TEST(Fp8SimulateTest, ResultsLieOnGridAndAreIdempotent) {
  std::mt19937 rng(12);
  const Grid& g = Fp8Grid();
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<BF16> x = RandomVector(rng, g, 16, kFp8KvBlock);
    std::vector<double> scales;
    for (size_t b = 0; b < x.size(); b += kFp8KvBlock) {
      double amax = 0;
      for (size_t j = b; j < b + kFp8KvBlock; ++j) amax = std::max(amax, Abs(x[j]));
      scales.push_back(RefScale(amax, g));
    }
    const std::vector<BF16> input = x;
    Fp8SimulateInplace(x, kFp8KvBlock);
    for (size_t i = 0; i < x.size(); ++i) {
      if (std::isinf(Bf16ToF32(x[i]))) {  // rounded up past the FP32 range: only near 2^128
        ASSERT_GE(Abs(input[i]), 0x1.Cp127) << i;
        continue;
      }
      const double t = Abs(x[i]) / scales[i / kFp8KvBlock];
      ASSERT_TRUE(std::binary_search(g.values.begin(), g.values.end(), t)) << i << ": " << t;
    }
    ExpectIdempotent(x, kFp8KvBlock, /*fp4=*/false);
  }
}

TEST(Fp8SimulateTest, RoundingUpPastTheFp32RangeGivesInf) {
  // 0x7F7F (≈3.39e38) alone: s = 2^120, x / s ≈ 282.8 rounds to 288, and 288 * 2^120 overflows
  // in FP32, exactly as the reference kernel's FP32 multiply does.
  std::vector<BF16> x(64, BF16{});
  x[0] = BF16{0x7F7F};
  x[1] = BF16{0xFF60};  // -1.75 * 2^127 = -448 * 2^119: exact, stays finite
  Fp8SimulateInplace(x, 64);
  EXPECT_EQ(x[0].bits, 0x7F80);
  EXPECT_EQ(x[1].bits, 0xFF60);
}

TEST(Fp8SimulateTest, NonFiniteInputs) {
  std::vector<BF16> x(64, F32ToBf16(1.0f));
  x[3] = BF16{0x7FC0};  // NaN is ignored by amax and stays NaN
  Fp8SimulateInplace(x, 64);
  EXPECT_TRUE(std::isnan(Bf16ToF32(x[3])));
  EXPECT_EQ(Bf16ToF32(x[0]), 1.0f);
  x[5] = BF16{0x7F80};  // inf makes the scale inf: the block is poisoned, as in the reference
  Fp8SimulateInplace(x, 64);
  EXPECT_TRUE(std::isnan(Bf16ToF32(x[0])));
}

TEST(Fp4SimulateTest, HandExample) {
  std::vector<BF16> x(32, BF16{});
  const float in[] = {6.0f, 0.25f, 0.75f, -1.25f, 1.75f, 2.5f, -3.5f, 5.0f, 0.3f, -0.1f};
  const float out[] = {6.0f, 0.0f, 1.0f, -1.0f, 2.0f, 2.0f, -4.0f, 4.0f, 0.5f, -0.0f};
  for (size_t i = 0; i < std::size(in); ++i) x[i] = F32ToBf16(in[i]);
  Fp4SimulateInplace(x);
  for (size_t i = 0; i < std::size(in); ++i) {
    EXPECT_EQ(Bf16ToF32(x[i]), out[i]) << in[i];
    EXPECT_EQ(std::signbit(Bf16ToF32(x[i])), std::signbit(out[i])) << in[i];
  }
}

TEST(Fp4SimulateTest, MatchesReferenceOnRandomVectors) {
  std::mt19937 rng(13);
  for (size_t num_blocks : {1, 2, 4, 5, 64}) {
    for (int trial = 0; trial < 200; ++trial) {
      std::vector<BF16> x = RandomVector(rng, Fp4Grid(), num_blocks, kFp4Block);
      const std::vector<BF16> want = RefSimulate(x, kFp4Block, Fp4Grid());
      Fp4SimulateInplace(x);
      ExpectSameBits(x, want);
      ExpectIdempotent(x, kFp4Block, /*fp4=*/true);
    }
  }
}

TEST(Fp4SimulateTest, TinyBlockUsesFloorScale) {
  // amax below 6 * 2^-126: s = 2^-126, so 2^-127 is code 1 (0.5) and 2^-129 rounds to 0.
  std::vector<BF16> x(32, BF16{});
  x[0] = F32ToBf16(0x1p-127f);
  x[1] = F32ToBf16(-0x1p-129f);
  x[2] = F32ToBf16(0x1.8p-126f);  // 1.5 * 2^-126 -> code 3
  Fp4SimulateInplace(x);
  EXPECT_EQ(Bf16ToF32(x[0]), 0x1p-127f);
  EXPECT_EQ(x[1].bits, 0x8000);
  EXPECT_EQ(Bf16ToF32(x[2]), 0x1.8p-126f);
}

TEST(QuantDeathTest, SimulationRejectsPartialBlocks) {
  std::vector<BF16> x(100);
  EXPECT_DEATH(Fp8SimulateInplace(x, 64), "check failed");
  EXPECT_DEATH(Fp8SimulateInplace(x, 0), "check failed");
  EXPECT_DEATH(Fp4SimulateInplace(x), "check failed");
}

// ---- ActQuantFp8 --------------------------------------------------------------------------

TEST(ActQuantFp8Test, MatchesReferenceAndSimulation) {
  std::mt19937 rng(14);
  const Grid& g = Fp8Grid();
  for (int trial = 0; trial < 100; ++trial) {
    const size_t num_blocks = 1 + rng() % 8;
    const std::vector<BF16> x = RandomVector(rng, g, num_blocks, kFp8ActBlock);
    std::vector<uint8_t> codes(x.size());
    std::vector<float> scales(num_blocks);
    ActQuantFp8(x, kFp8ActBlock, codes, scales);
    std::vector<BF16> simulated = x;
    Fp8SimulateInplace(simulated, kFp8ActBlock);
    for (size_t b = 0; b < num_blocks; ++b) {
      double amax = 0;
      for (size_t j = 0; j < kFp8ActBlock; ++j) {
        amax = std::max(amax, Abs(x[b * kFp8ActBlock + j]));
      }
      const double s = RefScale(amax, g);
      ASSERT_EQ(scales[b], s);
      ASSERT_EQ(E8M0ToF32(E8M0FromPow2(scales[b])), scales[b]);
      for (size_t j = b * kFp8ActBlock; j < (b + 1) * kFp8ActBlock; ++j) {
        const double q = RefQuantize(Bf16ToF32(x[j]), s, g);
        const size_t mag = NearestIndex(std::fabs(q), g);
        const uint8_t want = static_cast<uint8_t>((std::signbit(q) ? 0x80 : 0) | mag);
        ASSERT_EQ(codes[j], want) << j;
        ASSERT_EQ(F32ToBf16(E4M3ToF32(codes[j]) * scales[b]).bits, simulated[j].bits) << j;
      }
    }
  }
}

TEST(QuantDeathTest, ActQuantChecksSizes) {
  std::vector<BF16> x(256);
  std::vector<uint8_t> codes(256);
  std::vector<float> scales(2);
  std::vector<float> too_few(1);
  std::vector<uint8_t> short_codes(255);
  EXPECT_DEATH(ActQuantFp8(x, 128, codes, too_few), "check failed");
  EXPECT_DEATH(ActQuantFp8(x, 128, short_codes, scales), "check failed");
  EXPECT_DEATH(ActQuantFp8(x, 96, codes, scales), "check failed");
}

// ---- FP8 weights (128x128 tiles) ----------------------------------------------------------

// Random weights whose magnitude differs per 128x128 tile (so the scales differ).
std::vector<float> RandomWeights(std::mt19937& rng, int64_t rows, int64_t cols, int64_t tile) {
  std::vector<float> w(rows * cols);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t tile_cols = (cols + tile - 1) / tile;
  std::vector<int> tile_exp(((rows + tile - 1) / tile) * tile_cols);
  for (int& e : tile_exp) e = static_cast<int>(rng() % 60) - 40;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      w[r * cols + c] = std::ldexp(normal(rng), tile_exp[(r / tile) * tile_cols + c / tile]);
    }
  }
  return w;
}

struct Shape {
  int64_t rows, cols;
};

TEST(Fp8WeightTest, QuantizeMatchesReferencePerTile) {
  std::mt19937 rng(15);
  const Grid& g = Fp8Grid();
  for (Shape sh : {Shape{1, 1}, Shape{128, 128}, Shape{200, 130}, Shape{256, 384}, Shape{3, 300},
                   Shape{129, 1}}) {
    const std::vector<float> w = RandomWeights(rng, sh.rows, sh.cols, 128);
    const int64_t tr = (sh.rows + 127) / 128, tc = (sh.cols + 127) / 128;
    std::vector<uint8_t> codes(w.size()), scales(tr * tc);
    QuantizeFp8Block128(w, sh.rows, sh.cols, codes, scales);
    std::vector<float> deq(w.size());
    DequantizeFp8Block128(codes, scales, sh.rows, sh.cols, deq);
    std::vector<double> amax(tr * tc, 0.0);
    for (int64_t r = 0; r < sh.rows; ++r) {
      for (int64_t c = 0; c < sh.cols; ++c) {
        double& a = amax[(r / 128) * tc + c / 128];
        a = std::max(a, std::fabs(static_cast<double>(w[r * sh.cols + c])));
      }
    }
    for (int64_t r = 0; r < sh.rows; ++r) {
      for (int64_t c = 0; c < sh.cols; ++c) {
        const double s = RefScale(amax[(r / 128) * tc + c / 128], g);
        ASSERT_EQ(E8M0ToF32(scales[(r / 128) * tc + c / 128]), s) << r << "," << c;
        const double x = w[r * sh.cols + c], y = deq[r * sh.cols + c];
        ASSERT_EQ(y, RefQuantize(x, s, g) * s) << r << "," << c;
        // Within half a grid step of w (E4M3 steps: 2^-9 below 2^-6, else 2^(e-3)).
        const double t = std::fabs(x) / s;
        const double step = t < 0x1p-6 ? 0x1p-9 : std::ldexp(1.0, std::ilogb(t) - 3);
        ASSERT_LE(std::fabs(y - x), std::max(0.5 * step * s, std::fabs(x) - 448.0 * s));
        ASSERT_EQ(Bits(static_cast<float>(y)) & 0xFFFFu, 0u) << "dequantised value not BF16";
      }
    }
  }
}

TEST(Fp8WeightTest, EachTileHasItsOwnScale) {
  // [300, 260]: tiles 3 x 3, the edge ones partial. Zeros everywhere except one element of
  // tile (2, 1), so only that scale leaves the floor value 2^-22 (E8M0 code 105).
  const int64_t rows = 300, cols = 260;
  std::vector<float> w(rows * cols, 0.0f);
  w[290 * cols + 200] = -3.0f;  // tile (2, 1)
  std::vector<uint8_t> codes(w.size()), scales(9);
  QuantizeFp8Block128(w, rows, cols, codes, scales);
  for (int i = 0; i < 9; ++i) EXPECT_EQ(scales[i], i == 7 ? 127 - 7 : 105) << i;  // 3/448 -> 2^-7
  EXPECT_EQ(E4M3ToF32(codes[290 * cols + 200]) * E8M0ToF32(scales[7]), -3.0f);
  EXPECT_EQ(std::count(codes.begin(), codes.end(), 0), rows * cols - 1);
}

TEST(Fp8WeightTest, RequantizingDequantizedCodesIsLossless) {
  std::mt19937 rng(16);
  for (Shape sh : {Shape{128, 128}, Shape{130, 257}, Shape{1, 500}, Shape{300, 5}}) {
    const int64_t tr = (sh.rows + 127) / 128, tc = (sh.cols + 127) / 128;
    std::vector<uint8_t> codes(sh.rows * sh.cols), scales(tr * tc);
    for (uint8_t& c : codes) {
      c = 0x7F;
      while ((c & 0x7F) == 0x7F) c = static_cast<uint8_t>(rng());
    }
    // The scale is recoverable when each tile holds a ±448 code and 448 * s >= 1e-4.
    for (uint8_t& s : scales) s = static_cast<uint8_t>(105 + rng() % 136);
    for (int64_t t = 0; t < tr * tc; ++t) {
      const int64_t r = std::min((t / tc) * 128 + static_cast<int64_t>(rng() % 128), sh.rows - 1);
      const int64_t c = std::min((t % tc) * 128 + static_cast<int64_t>(rng() % 128), sh.cols - 1);
      codes[r * sh.cols + c] = (rng() & 1) ? 0x7E : 0xFE;
    }
    std::vector<float> w(codes.size());
    DequantizeFp8Block128(codes, scales, sh.rows, sh.cols, w);
    std::vector<uint8_t> codes2(codes.size()), scales2(scales.size());
    QuantizeFp8Block128(w, sh.rows, sh.cols, codes2, scales2);
    EXPECT_EQ(scales2, scales);
    EXPECT_EQ(codes2, codes);
  }
}

TEST(QuantDeathTest, Fp8WeightChecksSizesAndFiniteness) {
  std::vector<float> w(130 * 2, 1.0f);
  std::vector<uint8_t> codes(w.size()), scales(2), wrong_scales(1);
  EXPECT_DEATH(QuantizeFp8Block128(w, 130, 2, codes, wrong_scales), "check failed");
  EXPECT_DEATH(QuantizeFp8Block128(w, 131, 2, codes, scales), "check failed");
  std::vector<float> out(w.size());
  EXPECT_DEATH(DequantizeFp8Block128(codes, wrong_scales, 130, 2, out), "check failed");
  w[7] = std::numeric_limits<float>::infinity();
  EXPECT_DEATH(QuantizeFp8Block128(w, 130, 2, codes, scales), "finite");
}

// ---- FP4 weights (32 per row per scale) ---------------------------------------------------

TEST(Fp4WeightTest, NibbleOrderAndScaleLayout) {
  // Row 0: amax 6 -> s = 1; row 1: amax 12 -> s = 2 (second block of row 1 only).
  std::vector<float> w(2 * 64, 0.0f);
  w[0] = 0.5f;   // code 1, low nibble of byte 0
  w[1] = -1.0f;  // code 0xA, high nibble of byte 0
  w[2] = 6.0f;   // code 7, low nibble of byte 1
  w[64 + 32] = 12.0f;
  w[64 + 33] = 3.0f;  // 1.5 * 2
  std::vector<uint8_t> packed(64), scales(4);
  QuantizeFp4Row32(w, 2, 64, packed, scales);
  EXPECT_EQ(packed[0], 0xA1);
  EXPECT_EQ(packed[1], 0x07);
  EXPECT_EQ(packed[32 + 16], 0x37);  // row 1, columns 32/33: codes 7 (6*2) and 3 (1.5*2)
  EXPECT_EQ(scales[0], 127);
  EXPECT_EQ(scales[1], 1);  // all-zero block: floor 6*2^-126 -> 2^-126
  EXPECT_EQ(scales[2], 1);
  EXPECT_EQ(scales[3], 128);
  std::vector<float> out(w.size());
  DequantizeFp4Row32(packed, scales, 2, 64, out);
  EXPECT_EQ(out, w);
}

TEST(Fp4WeightTest, QuantizeMatchesReference) {
  std::mt19937 rng(17);
  const Grid& g = Fp4Grid();
  for (Shape sh : {Shape{1, 32}, Shape{7, 64}, Shape{64, 96}, Shape{3, 1024}}) {
    const std::vector<float> w = RandomWeights(rng, sh.rows, sh.cols, 32);
    std::vector<uint8_t> packed(w.size() / 2), scales(w.size() / 32);
    QuantizeFp4Row32(w, sh.rows, sh.cols, packed, scales);
    std::vector<float> deq(w.size());
    DequantizeFp4Row32(packed, scales, sh.rows, sh.cols, deq);
    for (size_t b = 0; b < w.size(); b += 32) {
      double amax = 0;
      for (size_t j = b; j < b + 32; ++j) amax = std::max(amax, std::fabs(double{w[j]}));
      const double s = RefScale(amax, g);
      ASSERT_EQ(E8M0ToF32(scales[b / 32]), s) << b;
      for (size_t j = b; j < b + 32; ++j) {
        const double q = RefQuantize(w[j], s, g);
        ASSERT_EQ(deq[j], q * s) << j;
        const uint8_t code = (j % 2 == 0) ? E2M1Low(packed[j / 2]) : E2M1High(packed[j / 2]);
        ASSERT_EQ(E2M1ToF32(code), q) << j;
        const double t = std::fabs(w[j]) / s;
        const double step = t < 2 ? 0.5 : t < 4 ? 1.0 : 2.0;
        ASSERT_LE(std::fabs(deq[j] - w[j]), std::max(0.5 * step * s, std::fabs(w[j]) - 6.0 * s));
      }
    }
  }
}

TEST(Fp4WeightTest, RequantizingDequantizedCodesIsLossless) {
  std::mt19937 rng(18);
  const int64_t rows = 17, cols = 256;
  std::vector<uint8_t> packed(rows * cols / 2), scales(rows * cols / 32);
  for (uint8_t& p : packed) p = static_cast<uint8_t>(rng());
  // Every 32-block gets a ±6 code so its scale is recoverable; scales span the whole range
  // for which 6 * s is finite and above the floor (codes 1..252).
  for (size_t b = 0; b < scales.size(); ++b) {
    scales[b] = static_cast<uint8_t>(b == 0 ? 1 : b == 1 ? 252 : 1 + rng() % 252);
    uint8_t& byte = packed[b * 16 + rng() % 16];
    const uint8_t six = (rng() & 1) ? 0x7 : 0xF;
    byte = (rng() & 1) ? PackE2M1(six, E2M1High(byte)) : PackE2M1(E2M1Low(byte), six);
  }
  std::vector<float> w(rows * cols);
  DequantizeFp4Row32(packed, scales, rows, cols, w);
  for (float v : w) ASSERT_TRUE(std::isfinite(v));
  std::vector<uint8_t> packed2(packed.size()), scales2(scales.size());
  QuantizeFp4Row32(w, rows, cols, packed2, scales2);
  EXPECT_EQ(scales2, scales);
  EXPECT_EQ(packed2, packed);
}

TEST(QuantDeathTest, Fp4WeightChecksSizes) {
  std::vector<float> w(48, 1.0f);
  std::vector<uint8_t> packed(24), scales(1);
  EXPECT_DEATH(QuantizeFp4Row32(w, 1, 48, packed, scales), "check failed");  // 48 % 32 != 0
  std::vector<float> w64(64, 1.0f), out(64);
  std::vector<uint8_t> packed32(32), scales2(2);
  EXPECT_DEATH(QuantizeFp4Row32(w64, 1, 64, packed32, scales), "check failed");
  EXPECT_DEATH(DequantizeFp4Row32(packed, scales2, 1, 64, out), "check failed");
}

}  // namespace
}  // namespace dsv4
