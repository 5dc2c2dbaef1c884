// The FP8 GEMMs of prefill row counts (VDPBF16PS: linear_gemm_avx512bf16.cpp; FMAs:
// linear_gemm_avx512.cpp) against the canonical
// order at FP32, before the BF16 rounding that hides most order changes in the end-to-end
// comparisons of linear_isa_test.cpp: kFp8Block against QuantOutput, kFp8AsBf16 against Dot8
// of the dequantised row, bit for bit, on ragged row groups, partial output tiles, output
// ranges starting past 0 and across a 128-row scale boundary, several 512-value input slices.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <string>
#include <vector>

#include "core/bf16.h"
#include "core/rng.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/linear_internal.h"

namespace dsv4::kernels::internal {
namespace {

uint8_t RandomE4M3(Rng& rng) {  // any finite code
  uint8_t c;
  do c = static_cast<uint8_t>(rng.Below(256));
  while ((c & 0x7F) == 0x7F);
  return c;
}

TEST(LinearGemm, Fp32ResultsFollowTheCanonicalOrder) {
  if (!IsaSupported(Isa::kAvx512Bf16)) GTEST_SKIP() << "no AVX-512 BF16";
  struct Case {
    LinearKind kind;
    int64_t rows, in, out, n0;
    bool f32_scales;
  };
  const Case cases[] = {
      {LinearKind::kFp8Block, 8, 640, 40, 0, false},  // from kGemmMinRows: 3 + 3 + 2
      {LinearKind::kFp8Block, 16, 128, 16, 0, false},
      {LinearKind::kFp8Block, 17, 640, 40, 16, false},
      {LinearKind::kFp8Block, 50, 1152, 150, 112, true},
      {LinearKind::kFp8AsBf16, 10, 640, 33, 16, false},  // 3 x 3 + 1
      {LinearKind::kFp8AsBf16, 16, 640, 150, 0, false},
      {LinearKind::kFp8AsBf16, 23, 1152, 33, 16, false},
  };
  Rng rng(31337);
  for (const Case& c : cases) {
    const int64_t blocks = c.in / 128, scale_cols = blocks;
    std::vector<uint8_t> codes(c.out * c.in), scales(((c.out + 127) / 128) * scale_cols);
    for (auto& v : codes) v = RandomE4M3(rng);
    for (auto& s : scales) s = static_cast<uint8_t>(112 + rng.Below(16));
    std::vector<float> scales_f32(scales.size());
    for (auto& s : scales_f32) s = static_cast<float>(rng.Uniform(1e-4, 1e-2));
    LinearWeight w{c.kind, c.out, c.in};
    w.codes = codes.data();
    w.scales = scales.data();
    if (c.f32_scales) w.scales_f32 = scales_f32.data();
    // Inputs as the front end prepares them: E4M3 code values and power-of-two scales
    // (kFp8Block), BF16 values (kFp8AsBf16).
    std::vector<float> x(c.rows * c.in), xscale(c.rows * blocks);
    for (auto& v : x) {
      v = c.kind == LinearKind::kFp8Block
              ? E4M3Table()[RandomE4M3(rng)]
              : Bf16ToF32(F32ToBf16(static_cast<float>(rng.Normal() * std::exp(rng.Uniform(-3, 3)))));
    }
    for (auto& s : xscale) s = std::ldexp(1.0f, static_cast<int>(rng.Below(16)) - 10);
    std::vector<float> y(c.rows * c.out, -1.0f);
    LinearThreadScratch scratch;
    LinearCall call;
    call.w = &w;
    call.x = x.data();
    call.xscale = xscale.data();
    call.rows = c.rows;
    call.y_f32 = y.data();
    call.scratch = &scratch;
    ASSERT_TRUE(LinearGemmAvx512Bf16(call, c.n0, c.out));
    std::vector<float> y_fma(c.rows * c.out, -1.0f);
    {  // both kinds (kFp8AsBf16: the active ISA is AVX-512 BF16 here)
      LinearCall fma_call = call;
      fma_call.y_f32 = y_fma.data();
      ASSERT_TRUE(LinearGemmAvx512(fma_call, c.n0, c.out));
    }
    std::vector<float> wrow(c.in);
    for (int64_t n = c.n0; n < c.out; ++n) {
      for (int64_t k = 0; k < c.in; ++k) {
        wrow[k] = E4M3Table()[codes[n * c.in + k]];
        if (c.kind == LinearKind::kFp8AsBf16) {
          wrow[k] *= E8M0Table()[scales[(n / 128) * scale_cols + k / 128]];
        }
      }
      for (int64_t r = 0; r < c.rows; ++r) {
        const float* xr = x.data() + r * c.in;
        const float expected =
            c.kind == LinearKind::kFp8Block
                ? QuantOutput(w, n, wrow.data(), xr, xscale.data() + r * blocks)
                : Dot8(xr, wrow.data(), c.in);
        ASSERT_EQ(std::bit_cast<uint32_t>(y[r * c.out + n]), std::bit_cast<uint32_t>(expected))
            << "kind " << static_cast<int>(c.kind) << " rows " << c.rows << " in " << c.in
            << " output " << n << " row " << r;
        ASSERT_EQ(std::bit_cast<uint32_t>(y_fma[r * c.out + n]), std::bit_cast<uint32_t>(expected))
            << "FMA GEMM kind " << static_cast<int>(c.kind) << " rows " << c.rows << " in "
            << c.in << " output " << n << " row " << r;
      }
    }
  }
}

}  // namespace
}  // namespace dsv4::kernels::internal
