#include "kernels/cpu/linear.h"

#include <array>
#include <vector>

#include "core/check.h"
#include "core/fp4.h"
#include "core/fp8.h"
#include "core/quant.h"

namespace dsv4::kernels {
namespace {

constexpr int64_t kRowsPerTask = 8;  // output rows per ParallelFor grain

std::array<float, 256> MakeE4M3Table() {
  std::array<float, 256> t{};
  for (int c = 0; c < 256; ++c) t[c] = E4M3ToF32(static_cast<uint8_t>(c));
  return t;
}
const std::array<float, 256>& E4M3Table() {
  static const std::array<float, 256> table = MakeE4M3Table();
  return table;
}

// Decodes weight row n to FP32 code values (not yet scaled) into `out` [w.in].
void DecodeRow(const LinearWeight& w, int64_t n, float* out) {
  switch (w.kind) {
    case LinearKind::kFp8Block: {
      const auto& t = E4M3Table();
      const uint8_t* c = w.codes + n * w.in;
      for (int64_t k = 0; k < w.in; ++k) out[k] = t[c[k]];
      break;
    }
    case LinearKind::kFp4Row32: {
      const uint8_t* c = w.codes + n * (w.in / 2);
      for (int64_t k = 0; k < w.in / 2; ++k) {
        out[2 * k] = E2M1ToF32(E2M1Low(c[k]));
        out[2 * k + 1] = E2M1ToF32(E2M1High(c[k]));
      }
      break;
    }
    case LinearKind::kBf16:
      for (int64_t k = 0; k < w.in; ++k) out[k] = Bf16ToF32(w.bf16[n * w.in + k]);
      break;
    case LinearKind::kF32:
      for (int64_t k = 0; k < w.in; ++k) out[k] = w.f32[n * w.in + k];
      break;
  }
}

// Input rows prepared once per call: FP8 code values + per-128 scales for the quantised
// kinds, plain FP32 values otherwise.
struct PreparedInput {
  std::vector<float> values;  // [rows, in]
  std::vector<float> scales;  // [rows, in/128] (quantised kinds only)
};

void PrepareInput(const LinearWeight& w, const BF16* x, int64_t rows, PreparedInput* p) {
  p->values.resize(static_cast<size_t>(rows * w.in));
  if (w.kind == LinearKind::kBf16) {
    for (int64_t i = 0; i < rows * w.in; ++i) p->values[i] = Bf16ToF32(x[i]);
    return;
  }
  DSV4_CHECK(w.in % 128 == 0);
  const int64_t blocks = w.in / 128;
  p->scales.resize(static_cast<size_t>(rows * blocks));
  std::vector<uint8_t> codes(static_cast<size_t>(w.in));
  const auto& t = E4M3Table();
  for (int64_t r = 0; r < rows; ++r) {
    ActQuantFp8({x + r * w.in, static_cast<size_t>(w.in)}, kFp8ActBlock, codes,
                {p->scales.data() + r * blocks, static_cast<size_t>(blocks)});
    for (int64_t k = 0; k < w.in; ++k) p->values[r * w.in + k] = t[codes[k]];
  }
}

// One output element from a decoded weight row (`wrow`, code values) and a prepared input row.
float QuantOutput(const LinearWeight& w, int64_t n, const float* wrow, const float* xrow,
                  const float* xscale) {
  float acc = 0.0f;
  if (w.kind == LinearKind::kFp8Block) {
    const int64_t scale_cols = (w.in + 127) / 128;
    for (int64_t b = 0; b < w.in / 128; ++b) {
      const float partial = Dot8(xrow + b * 128, wrow + b * 128, 128);
      const int64_t tile = (n / 128) * scale_cols + b;
      const float ws = w.scales_f32 != nullptr ? w.scales_f32[tile] : E8M0ToF32(w.scales[tile]);
      acc += partial * xscale[b] * ws;
    }
    return acc;
  }
  for (int64_t c = 0; c < w.in / 32; ++c) {
    const float partial = Dot8(xrow + c * 32, wrow + c * 32, 32);
    acc += partial * xscale[c / 4] * E8M0ToF32(w.scales[n * (w.in / 32) + c]);
  }
  return acc;
}

}  // namespace

float Dot8(const float* a, const float* b, int64_t n) {
  float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) {
    for (int j = 0; j < 8; ++j) lane[j] += a[k + j] * b[k + j];
  }
  const int tail = static_cast<int>(n - k);  // < 8
  for (int j = 0; j < tail && j < 8; ++j) lane[j] += a[k + j] * b[k + j];
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

void Linear(ThreadPool& pool, const LinearWeight& w, const BF16* x, int64_t rows, BF16* y) {
  DSV4_CHECK(w.kind != LinearKind::kF32);
  PreparedInput in;
  PrepareInput(w, x, rows, &in);
  const int64_t blocks = w.in / 128;
  pool.ParallelFor(w.out, kRowsPerTask, [&](int64_t begin, int64_t end) {
    std::vector<float> wrow(static_cast<size_t>(w.in));
    for (int64_t n = begin; n < end; ++n) {
      DecodeRow(w, n, wrow.data());
      for (int64_t r = 0; r < rows; ++r) {
        const float* xr = in.values.data() + r * w.in;
        const float v = w.kind == LinearKind::kBf16
                            ? Dot8(xr, wrow.data(), w.in)
                            : QuantOutput(w, n, wrow.data(), xr, in.scales.data() + r * blocks);
        y[r * w.out + n] = F32ToBf16(v);
      }
    }
  });
}

void LinearF32(ThreadPool& pool, const LinearWeight& w, const float* x, int64_t rows, float* y) {
  DSV4_CHECK(w.kind == LinearKind::kF32);
  pool.ParallelFor(w.out, kRowsPerTask, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      for (int64_t r = 0; r < rows; ++r) y[r * w.out + n] = Dot8(x + r * w.in, w.f32 + n * w.in, w.in);
    }
  });
}

void LinearBf16InF32(ThreadPool& pool, const LinearWeight& w, const BF16* x, int64_t rows,
                     float* y) {
  std::vector<float> xf(static_cast<size_t>(rows * w.in));
  for (int64_t i = 0; i < rows * w.in; ++i) xf[i] = Bf16ToF32(x[i]);
  LinearF32(pool, w, xf.data(), rows, y);
}

}  // namespace dsv4::kernels
