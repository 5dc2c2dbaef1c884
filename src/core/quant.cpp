#include "core/quant.h"

#include <algorithm>
#include <bit>
#include <cmath>

#include "core/check.h"
#include "core/fp4.h"
#include "core/fp8.h"

namespace dsv4 {
namespace {

// max |x_j| in FP32. fmax ignores NaN, like the reference kernel's max reduction on the GPU.
// NaNs (quiet or signalling) are skipped: a comparison with NaN is false.
float AbsMax(std::span<const BF16> x) {
  float a = 0.0f;
  for (BF16 v : x) {
    const float m = std::fabs(Bf16ToF32(v));
    if (m > a) a = m;
  }
  return a;
}

// §4.4 step 3. x / s is exact (s is a power of two) unless it lands below FP32 normals, far
// below the E4M3 grid. std::clamp passes NaN through.
uint8_t QuantE4M3(float v, float s) { return F32ToE4M3(std::clamp(v / s, -kE4M3Max, kE4M3Max)); }

// §4.5, same shape with the E2M1 grid.
uint8_t QuantE2M1(float v, float s) { return F32ToE2M1(std::clamp(v / s, -kE2M1Max, kE2M1Max)); }

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// max |w| over the rows [r0, r1) x cols [c0, c1) of a row-major [rows, cols] matrix. Weights
// come from our own generator or tests, so a non-finite value is a bug.
float TileAbsMax(std::span<const float> w, int64_t cols, int64_t r0, int64_t r1, int64_t c0,
                 int64_t c1) {
  float a = 0.0f;
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t c = c0; c < c1; ++c) {
      const float v = w[r * cols + c];
      DSV4_CHECK_MSG(std::isfinite(v), "weight quantisation needs finite values");
      a = std::max(a, std::fabs(v));
    }
  }
  return a;
}

}  // namespace

float Ue8m0Scale(float amax, float max_code) {
  DSV4_CHECK(max_code > 0.0f && std::isfinite(max_code));
  DSV4_CHECK_MSG(amax > 0.0f, "Ue8m0Scale needs amax > 0 (apply the floor first)");
  const float product = amax * (1.0f / max_code);  // both roundings in FP32, as the kernel
  const uint32_t bits = std::bit_cast<uint32_t>(product);
  const uint32_t exp_field = (bits >> 23) & 0xFFu;
  const uint32_t round_up = (bits & 0x007FFFFFu) != 0 ? 1u : 0u;
  // exp_field + round_up is the biased exponent of 2^ceil(log2(product)); 255 (from a product
  // of inf or above 2^127) reads back as inf.
  return std::bit_cast<float>((exp_field + round_up) << 23);
}

void Fp8SimulateInplace(std::span<BF16> x, size_t block) {
  DSV4_CHECK(block > 0 && x.size() % block == 0);
  for (size_t b = 0; b < x.size(); b += block) {
    std::span<BF16> blk = x.subspan(b, block);
    const float amax = std::max(AbsMax(blk), kFp8AmaxFloor);
    const float s = Ue8m0Scale(amax, kE4M3Max);
    for (BF16& v : blk) v = F32ToBf16(E4M3ToF32(QuantE4M3(Bf16ToF32(v), s)) * s);
  }
}

void Fp4SimulateInplace(std::span<BF16> x) {
  DSV4_CHECK(x.size() % kFp4Block == 0);
  for (size_t b = 0; b < x.size(); b += kFp4Block) {
    std::span<BF16> blk = x.subspan(b, kFp4Block);
    const float amax = std::max(AbsMax(blk), kFp4AmaxFloor);
    const float s = Ue8m0Scale(amax, kE2M1Max);
    for (BF16& v : blk) v = F32ToBf16(E2M1ToF32(QuantE2M1(Bf16ToF32(v), s)) * s);
  }
}

void ActQuantFp8(std::span<const BF16> x, size_t block, std::span<uint8_t> codes,
                 std::span<float> scales) {
  DSV4_CHECK(block > 0 && x.size() % block == 0);
  DSV4_CHECK(codes.size() == x.size() && scales.size() == x.size() / block);
  for (size_t i = 0; i < scales.size(); ++i) {
    std::span<const BF16> blk = x.subspan(i * block, block);
    const float s = Ue8m0Scale(std::max(AbsMax(blk), kFp8AmaxFloor), kE4M3Max);
    scales[i] = s;
    for (size_t j = 0; j < block; ++j) codes[i * block + j] = QuantE4M3(Bf16ToF32(blk[j]), s);
  }
}

void QuantizeFp8Block128(std::span<const float> w, int64_t rows, int64_t cols,
                         std::span<uint8_t> codes, std::span<uint8_t> scales_e8m0) {
  DSV4_CHECK(rows >= 0 && cols >= 0);
  const int64_t tile_rows = CeilDiv(rows, kFp8WeightTile);
  const int64_t tile_cols = CeilDiv(cols, kFp8WeightTile);
  DSV4_CHECK(static_cast<int64_t>(w.size()) == rows * cols);
  DSV4_CHECK(static_cast<int64_t>(codes.size()) == rows * cols);
  DSV4_CHECK(static_cast<int64_t>(scales_e8m0.size()) == tile_rows * tile_cols);
  for (int64_t tr = 0; tr < tile_rows; ++tr) {
    const int64_t r0 = tr * kFp8WeightTile, r1 = std::min(rows, r0 + kFp8WeightTile);
    for (int64_t tc = 0; tc < tile_cols; ++tc) {
      const int64_t c0 = tc * kFp8WeightTile, c1 = std::min(cols, c0 + kFp8WeightTile);
      const float amax = std::max(TileAbsMax(w, cols, r0, r1, c0, c1), kFp8AmaxFloor);
      const float s = Ue8m0Scale(amax, kE4M3Max);
      scales_e8m0[tr * tile_cols + tc] = E8M0FromPow2(s);
      for (int64_t r = r0; r < r1; ++r) {
        for (int64_t c = c0; c < c1; ++c) codes[r * cols + c] = QuantE4M3(w[r * cols + c], s);
      }
    }
  }
}

void DequantizeFp8Block128(std::span<const uint8_t> codes, std::span<const uint8_t> scales_e8m0,
                           int64_t rows, int64_t cols, std::span<float> out) {
  DSV4_CHECK(rows >= 0 && cols >= 0);
  const int64_t tile_cols = CeilDiv(cols, kFp8WeightTile);
  DSV4_CHECK(static_cast<int64_t>(codes.size()) == rows * cols);
  DSV4_CHECK(static_cast<int64_t>(scales_e8m0.size()) == CeilDiv(rows, kFp8WeightTile) * tile_cols);
  DSV4_CHECK(static_cast<int64_t>(out.size()) == rows * cols);
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* tile_scales = scales_e8m0.data() + (r / kFp8WeightTile) * tile_cols;
    for (int64_t c = 0; c < cols; ++c) {
      const float s = E8M0ToF32(tile_scales[c / kFp8WeightTile]);
      out[r * cols + c] = E4M3ToF32(codes[r * cols + c]) * s;
    }
  }
}

void QuantizeFp4Row32(std::span<const float> w, int64_t rows, int64_t cols,
                      std::span<uint8_t> packed, std::span<uint8_t> scales_e8m0) {
  constexpr int64_t kBlock = static_cast<int64_t>(kFp4Block);
  DSV4_CHECK(rows >= 0 && cols >= 0 && cols % kBlock == 0);
  DSV4_CHECK(static_cast<int64_t>(w.size()) == rows * cols);
  DSV4_CHECK(static_cast<int64_t>(packed.size()) == rows * cols / 2);
  DSV4_CHECK(static_cast<int64_t>(scales_e8m0.size()) == rows * cols / kBlock);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c0 = 0; c0 < cols; c0 += kBlock) {
      const float amax = std::max(TileAbsMax(w, cols, r, r + 1, c0, c0 + kBlock), kFp4AmaxFloor);
      const float s = Ue8m0Scale(amax, kE2M1Max);
      scales_e8m0[(r * cols + c0) / kBlock] = E8M0FromPow2(s);
      for (int64_t c = c0; c < c0 + kBlock; c += 2) {
        const uint8_t lo = QuantE2M1(w[r * cols + c], s);
        const uint8_t hi = QuantE2M1(w[r * cols + c + 1], s);
        packed[(r * cols + c) / 2] = PackE2M1(lo, hi);
      }
    }
  }
}

void DequantizeFp4Row32(std::span<const uint8_t> packed, std::span<const uint8_t> scales_e8m0,
                        int64_t rows, int64_t cols, std::span<float> out) {
  constexpr int64_t kBlock = static_cast<int64_t>(kFp4Block);
  DSV4_CHECK(rows >= 0 && cols >= 0 && cols % kBlock == 0);
  DSV4_CHECK(static_cast<int64_t>(packed.size()) == rows * cols / 2);
  DSV4_CHECK(static_cast<int64_t>(scales_e8m0.size()) == rows * cols / kBlock);
  DSV4_CHECK(static_cast<int64_t>(out.size()) == rows * cols);
  for (int64_t i = 0; i < rows * cols; i += 2) {
    // Row-major with cols % 32 == 0, so flat index / 32 is (row, column block).
    const float s = E8M0ToF32(scales_e8m0[i / kBlock]);
    const uint8_t byte = packed[i / 2];
    out[i] = E2M1ToF32(E2M1Low(byte)) * s;
    out[i + 1] = E2M1ToF32(E2M1High(byte)) * s;
  }
}

}  // namespace dsv4
