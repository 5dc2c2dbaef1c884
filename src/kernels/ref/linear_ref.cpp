#include "kernels/ref/linear_ref.h"

#include <vector>

#include "core/check.h"
#include "core/fp4.h"
#include "core/fp8.h"
#include "core/quant.h"

namespace dsv4::kernels::ref {
namespace {

// Weight element k of row n of a packed-E2M1 linear, as its E2M1 code value.
float E2M1At(const LinearWeight& w, int64_t n, int64_t k) {
  const uint8_t byte = w.codes[n * (w.in / 2) + k / 2];
  return E2M1ToF32(k % 2 == 0 ? E2M1Low(byte) : E2M1High(byte));
}

// One output element of an NVFP4 linear in its canonical order (the fast kernels'
// Nvfp4LaneScaledDot, spec-level statement): element k goes to lane k mod 8; in each 32-chunk
// a lane sums its two products of each 16-block, scales each sum by that block's
// e4m3 x global (an FP32 product), adds the two, multiplies by the input's per-128 scale and
// accumulates; the 8 lanes are added pairwise at the end.
float Nvfp4Dot(const LinearWeight& w, const uint8_t* qx, const float* sx, int64_t n) {
  float lanes[8] = {};
  for (int64_t c = 0; c < w.in / 32; ++c) {
    for (int64_t l = 0; l < 8; ++l) {
      float block_sum[2] = {0.0f, 0.0f};
      for (int64_t j = 0; j < 4; ++j) {
        const int64_t k = c * 32 + l + 8 * j;
        block_sum[j / 2] += E4M3ToF32(qx[k]) * E2M1At(w, n, k);
      }
      float scaled[2];
      for (int64_t h = 0; h < 2; ++h) {
        const float block_scale = E4M3ToF32(w.scales[n * (w.in / 16) + 2 * c + h]) * w.global_scale;
        scaled[h] = block_sum[h] * block_scale;
      }
      lanes[l] += (scaled[0] + scaled[1]) * sx[c / 4];
    }
  }
  const float a = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
  const float b = (lanes[4] + lanes[5]) + (lanes[6] + lanes[7]);
  return a + b;
}

// One output element of a block-quantised linear. qx: FP8 codes of the input row, sx: its
// per-128 scales (§4.4). FP8 weights: one scale per 128x128 tile (E8M0, or F32 when
// scales_f32 is set); FP4: one per row and 32.
float QuantDot(const LinearWeight& w, const uint8_t* qx, const float* sx, int64_t n) {
  const int64_t k_blocks = w.in / 128;
  float acc = 0.0f;
  if (w.kind == LinearKind::kFp8Block) {
    const int64_t scale_cols = (w.in + 127) / 128;
    for (int64_t b = 0; b < k_blocks; ++b) {
      float partial = 0.0f;
      for (int64_t k = b * 128; k < (b + 1) * 128; ++k) {
        partial += E4M3ToF32(qx[k]) * E4M3ToF32(w.codes[n * w.in + k]);
      }
      const int64_t tile = (n / 128) * scale_cols + b;
      const float ws = w.scales_f32 != nullptr ? w.scales_f32[tile] : E8M0ToF32(w.scales[tile]);
      acc += partial * sx[b] * ws;
    }
    return acc;
  }
  if (w.kind == LinearKind::kNvfp4Row16) return Nvfp4Dot(w, qx, sx, n);
  for (int64_t c = 0; c < w.in / 32; ++c) {
    float partial = 0.0f;
    for (int64_t k = c * 32; k < (c + 1) * 32; ++k) {
      partial += E4M3ToF32(qx[k]) * E2M1At(w, n, k);
    }
    acc += partial * sx[c * 32 / 128] * E8M0ToF32(w.scales[n * (w.in / 32) + c]);
  }
  return acc;
}

}  // namespace

void Linear(const LinearWeight& w, const BF16* x, int64_t rows, BF16* y) {
  DSV4_CHECK(w.kind != LinearKind::kF32);
  std::vector<uint8_t> qx(static_cast<size_t>(w.in));
  std::vector<float> sx(static_cast<size_t>(w.in / 128 + 1));
  for (int64_t r = 0; r < rows; ++r) {
    const BF16* xr = x + r * w.in;
    if (w.kind == LinearKind::kBf16) {
      for (int64_t n = 0; n < w.out; ++n) {
        float acc = 0.0f;
        for (int64_t k = 0; k < w.in; ++k) acc += Bf16ToF32(xr[k]) * Bf16ToF32(w.bf16[n * w.in + k]);
        y[r * w.out + n] = F32ToBf16(acc);
      }
      continue;
    }
    if (w.kind == LinearKind::kFp8AsBf16) {
      const int64_t scale_cols = (w.in + 127) / 128;
      for (int64_t n = 0; n < w.out; ++n) {
        float acc = 0.0f;
        for (int64_t k = 0; k < w.in; ++k) {
          const float wv = E4M3ToF32(w.codes[n * w.in + k]) *
                           E8M0ToF32(w.scales[(n / 128) * scale_cols + k / 128]);
          acc += Bf16ToF32(xr[k]) * wv;
        }
        y[r * w.out + n] = F32ToBf16(acc);
      }
      continue;
    }
    DSV4_CHECK(w.in % 128 == 0);
    ActQuantFp8({xr, static_cast<size_t>(w.in)}, kFp8ActBlock, qx,
                {sx.data(), static_cast<size_t>(w.in / 128)});
    for (int64_t n = 0; n < w.out; ++n) {
      y[r * w.out + n] = F32ToBf16(QuantDot(w, qx.data(), sx.data(), n));
    }
  }
}

void LinearF32(const LinearWeight& w, const float* x, int64_t rows, float* y) {
  DSV4_CHECK(w.kind == LinearKind::kF32);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t n = 0; n < w.out; ++n) {
      float acc = 0.0f;
      for (int64_t k = 0; k < w.in; ++k) {
        const float wv = w.f32 != nullptr ? w.f32[n * w.in + k] : Bf16ToF32(w.bf16[n * w.in + k]);
        acc += x[r * w.in + k] * wv;
      }
      y[r * w.out + n] = acc;
    }
  }
}

}  // namespace dsv4::kernels::ref
