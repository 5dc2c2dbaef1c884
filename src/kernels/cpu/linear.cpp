#include "kernels/cpu/linear.h"

#include <algorithm>
#include <array>
#include <vector>

#include "core/check.h"
#include "core/fp4.h"
#include "core/fp8.h"
#include "core/quant.h"
#include "kernels/cpu/fp4_tiles.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/linear_internal.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/workspace_internal.h"

namespace dsv4::kernels {
namespace internal {
namespace {

std::array<float, 256> MakeE4M3Table() {
  std::array<float, 256> t{};
  for (int c = 0; c < 256; ++c) t[c] = E4M3ToF32(static_cast<uint8_t>(c));
  return t;
}

}  // namespace

const std::array<float, 256>& E4M3Table() {
  static const std::array<float, 256> table = MakeE4M3Table();
  return table;
}

namespace {

// Decodes weight row n to FP32 code values (not yet scaled) into `out` [w.in]. fp4_rows:
// scratch for an FP4 row recovered from w.fp4_tiles.
void DecodeRow(const LinearWeight& w, int64_t n, std::vector<uint8_t>* fp4_rows, float* out) {
  switch (w.kind) {
    case LinearKind::kFp8Block: {
      const auto& t = E4M3Table();
      const uint8_t* c = w.codes + n * w.in;
      for (int64_t k = 0; k < w.in; ++k) out[k] = t[c[k]];
      break;
    }
    case LinearKind::kFp4Row32:
    case LinearKind::kNvfp4Row16: {
      const uint8_t* c = w.codes + n * (w.in / 2);
      if (w.fp4_tiles != nullptr) {
        GrowTo(*fp4_rows, w.in / 2);
        Fp4TilesRow(w.fp4_tiles, w.in, n, fp4_rows->data());
        c = fp4_rows->data();
      }
      for (int64_t k = 0; k < w.in / 2; ++k) {
        out[2 * k] = E2M1ToF32(E2M1Low(c[k]));
        out[2 * k + 1] = E2M1ToF32(E2M1High(c[k]));
      }
      break;
    }
    case LinearKind::kBf16:
      for (int64_t k = 0; k < w.in; ++k) out[k] = Bf16ToF32(w.bf16[n * w.in + k]);
      break;
    case LinearKind::kFp8AsBf16: {  // exact: see Fp8AsBf16ScalesOk
      const auto& t = E4M3Table();
      const uint8_t* c = w.codes + n * w.in;
      const uint8_t* s = w.scales + (n / 128) * ((w.in + 127) / 128);
      for (int64_t k = 0; k < w.in; ++k) out[k] = t[c[k]] * E8M0Table()[s[k / 128]];
      break;
    }
    case LinearKind::kF32:
      for (int64_t k = 0; k < w.in; ++k) {
        out[k] = w.f32 != nullptr ? w.f32[n * w.in + k] : Bf16ToF32(w.bf16[n * w.in + k]);
      }
      break;
  }
}

}  // namespace

void Fp4RowPointers(const LinearWeight& w, const int64_t* rows, int count,
                    std::vector<uint8_t>* buffer, const uint8_t** out) {
  const int64_t row_bytes = w.in / 2;
  if (w.fp4_tiles == nullptr) {
    for (int i = 0; i < count; ++i) out[i] = w.codes + rows[i] * row_bytes;
    return;
  }
  GrowTo(*buffer, count * row_bytes);
  for (int i = 0; i < count; ++i) {
    Fp4TilesRow(w.fp4_tiles, w.in, rows[i], buffer->data() + i * row_bytes);
    out[i] = buffer->data() + i * row_bytes;
  }
}

float Fp4LaneScaledDot(const float* wrow, const float* xrow, const float* xscale,
                       const uint8_t* wscale, int64_t in) {
  float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t c = 0; c < in / 32; ++c) {
    const float s = xscale[c / 4] * E8M0Table()[wscale[c]];
    for (int l = 0; l < 8; ++l) {
      float part = 0.0f;  // exact: 4 products of E4M3 and E2M1 code values
      for (int j = 0; j < 4; ++j) part += xrow[c * 32 + l + 8 * j] * wrow[c * 32 + l + 8 * j];
      lane[l] += part * s;
    }
  }
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

float Nvfp4LaneScaledDot(const float* wrow, const float* xrow, const float* xscale,
                         const uint8_t* wscale, float global, int64_t in) {
  const auto& e4m3 = E4M3Table();
  float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t c = 0; c < in / 32; ++c) {
    const float b0 = e4m3[wscale[2 * c]] * global, b1 = e4m3[wscale[2 * c + 1]] * global;
    const float* xc = xrow + c * 32;
    const float* wc = wrow + c * 32;
    for (int l = 0; l < 8; ++l) {
      float p0 = 0.0f, p1 = 0.0f;
      p0 += xc[l] * wc[l];
      p0 += xc[l + 8] * wc[l + 8];
      p1 += xc[l + 16] * wc[l + 16];
      p1 += xc[l + 24] * wc[l + 24];
      const float part = p0 * b0 + p1 * b1;
      lane[l] += part * xscale[c / 4];
    }
  }
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

// One output element from a decoded weight row (`wrow`, code values) and a prepared input row.
// FP8: each block's partial dot is scaled as (partial * xscale) * wscale and accumulated in
// block order; FP4: Fp4LaneScaledDot. The canonical orders every ISA reproduces.
float QuantOutput(const LinearWeight& w, int64_t n, const float* wrow, const float* xrow,
                  const float* xscale) {
  float acc = 0.0f;
  if (w.kind == LinearKind::kFp8Block) {
    for (int64_t b = 0; b < w.in / 128; ++b) {
      const float partial = Dot8(xrow + b * 128, wrow + b * 128, 128);
      acc += partial * xscale[b] * internal::Fp8BlockScale(w, n, b);
    }
    return acc;
  }
  if (w.kind == LinearKind::kNvfp4Row16) {
    return Nvfp4LaneScaledDot(wrow, xrow, xscale, w.scales + n * (w.in / 16), w.global_scale,
                              w.in);
  }
  return Fp4LaneScaledDot(wrow, xrow, xscale, w.scales + n * (w.in / 32), w.in);
}

void LinearTilesScalar(const LinearCall& c, int64_t n0, int64_t n1) {
  const LinearWeight& w = *c.w;
  const int64_t blocks = w.in / 128;
  std::vector<float>& wrow = c.scratch->weight_row;
  GrowTo(wrow, w.in);
  for (int64_t n = n0; n < n1; ++n) {
    DecodeRow(w, n, &c.scratch->fp4_rows, wrow.data());
    for (int64_t r = 0; r < c.rows; ++r) {
      const float* xr = c.x + r * w.in;
      if (w.kind == LinearKind::kF32) {
        c.y_f32[r * w.out + n] = Dot8(xr, wrow.data(), w.in);
        continue;
      }
      const float v = IsPlainBf16(w.kind)
                          ? Dot8(xr, wrow.data(), w.in)
                          : QuantOutput(w, n, wrow.data(), xr, c.xscale + r * blocks);
      c.y[r * w.out + n] = F32ToBf16(v);
    }
  }
}

}  // namespace internal

namespace {

using internal::LinearCall;

// Input rows prepared once per call into p->values and p->scales: FP8 code values + per-128
// scales for the quantised kinds, plain FP32 values otherwise. Rows are independent, so a
// long batch (prefill) quantises on every thread.
void PrepareInput(ThreadPool& pool, const LinearWeight& w, const BF16* x, int64_t rows,
                  internal::LinearScratch* p) {
  GrowTo(p->values, rows * w.in);
  float* values = p->values.data();
  if (internal::IsPlainBf16(w.kind)) {
    for (int64_t i = 0; i < rows * w.in; ++i) values[i] = Bf16ToF32(x[i]);
    return;
  }
  DSV4_CHECK(w.in % 128 == 0);
  const int64_t blocks = w.in / 128;
  GrowTo(p->scales, rows * blocks);
  float* scales = p->scales.data();
  const auto& t = internal::E4M3Table();
  const bool avx512 = ActiveIsaUpToAvx512() == Isa::kAvx512;
  // About 16 operations per value (amax, divide, round, decode).
  p->threads.Reserve(pool);
  pool.ParallelForWithThread(
      rows, GrainForWork(16 * w.in), [&](int64_t r0, int64_t r1, int thread) {
        std::vector<uint8_t>& codes = p->threads[thread].act_codes;
        GrowTo(codes, w.in);
        for (int64_t r = r0; r < r1; ++r) {
          if (avx512) {
            internal::ActQuantValuesAvx512(x + r * w.in, w.in, values + r * w.in,
                                           scales + r * blocks);
            continue;
          }
          ActQuantFp8({x + r * w.in, static_cast<size_t>(w.in)}, kFp8ActBlock,
                      {codes.data(), static_cast<size_t>(w.in)},
                      {scales + r * blocks, static_cast<size_t>(blocks)});
          for (int64_t k = 0; k < w.in; ++k) values[r * w.in + k] = t[codes[k]];
        }
      });
}

// The SIMD tile loops consume the input 32 values at a time (FP8 and FP4 inputs are always
// multiples of 128).
bool SimdShapeOk(const LinearWeight& w) { return w.in % 32 == 0; }

void Run(ThreadPool& pool, internal::LinearScratch* scratch, const LinearCall& call) {
  const LinearWeight& w = *call.w;
  Isa isa = ActiveIsa();
  if (!SimdShapeOk(w)) isa = Isa::kScalar;
  int64_t tile = 1;
  void (*tiles)(const LinearCall&, int64_t, int64_t) = internal::LinearTilesScalar;
  if (isa == Isa::kAvx512Bf16) {
    tile = internal::kAvx512Tile;
    tiles = internal::LinearTilesAvx512Bf16;
  } else if (isa == Isa::kAvx512) {
    tile = internal::kAvx512Tile;
    tiles = internal::LinearTilesAvx512;
  } else if (isa == Isa::kAvx2) {
    tile = internal::kAvx2Tile;
    tiles = internal::LinearTilesAvx2;
  }
  const int64_t num_tiles = (w.out + tile - 1) / tile;
  const int64_t grain = GrainForWork(call.rows * w.in * tile);
  // Rows in blocks whose inputs (~4 B per value in the SIMD layouts) stay in L2 while every
  // tile of the thread's range passes over them: a long prefill batch would otherwise stream
  // all of its inputs from memory once per tile of 8-16 outputs.
  int64_t row_block =
      std::max<int64_t>(4, (int64_t{1} << 16) / std::max<int64_t>(w.in, 1) / 4 * 4);
  // The VDPBF16PS path of BF16-valued weights cuts the input into L1-sized slices, so it
  // takes 64 rows per pass: each weight tile is read once for a whole decode batch.
  if (isa == Isa::kAvx512Bf16 && internal::Bf16RowsKind(w)) {
    row_block = std::max<int64_t>(row_block, 64);
  }
  // So does the FP8 GEMM of many rows (prefill chunks), kGemmRowBlock rows per pass, and the
  // MXFP4 expert tiles: their folded-scale passes decode each k-block of a tile once per row
  // block, so kFp4RowBlock rows share it (at in = 4096 the default gives 16). The GEMMs on
  // FMAs read FP32 inputs (MXFP4: each value twice), so fewer rows keep them in L2.
  if (LinearRunsOnFmaGemm(w, call.rows)) {
    row_block = w.kind == LinearKind::kFp4Row32 ? internal::Fp4FmaRowBlock(w.in)
                                                : internal::FmaGemmRowBlock(w.in);
    // BF16-valued weights (the head: 1 GiB) are read once for a decode batch of 64.
    if (internal::Bf16RowsKind(w)) row_block = std::max<int64_t>(row_block, 64);
  } else if (isa == Isa::kAvx512Bf16 && internal::GemmKind(w) &&
             call.rows >= internal::kGemmMinRows) {
    row_block = std::max(row_block, internal::kGemmRowBlock);
  } else if (isa == Isa::kAvx512Bf16 && w.kind == LinearKind::kFp4Row32 &&
             w.fp4_tiles != nullptr) {
    row_block = std::max(row_block, internal::kFp4RowBlock);
  }
  // Balanced blocks: as few as the block size allows up to an eighth over, all about equal,
  // so no short last block reads every weight again for a few rows (64 rows at in = 4096
  // were 63 on the FMA GEMM and 1 on the one-row path; 512 were 8 x 63 and 8).
  const int64_t max_block = row_block + row_block / 8;
  const int64_t blocks = std::max<int64_t>(1, (call.rows + max_block - 1) / max_block);
  row_block = std::max<int64_t>(1, (call.rows + blocks - 1) / blocks);
  scratch->threads.Reserve(pool);
  pool.ParallelForWithThread(num_tiles, grain, [&](int64_t begin, int64_t end, int t) {
    for (int64_t r0 = 0; r0 < call.rows; r0 += row_block) {
      LinearCall part = call;
      part.scratch = &scratch->threads[t];
      part.rows = std::min(row_block, call.rows - r0);
      part.x = call.x + r0 * w.in;
      if (call.xscale != nullptr) part.xscale = call.xscale + r0 * (w.in / 128);
      if (call.y != nullptr) part.y = call.y + r0 * w.out;
      if (call.y_f32 != nullptr) part.y_f32 = call.y_f32 + r0 * w.out;
      tiles(part, begin * tile, std::min(w.out, end * tile));
    }
  });
}

}  // namespace

bool LinearRunsOnFmaGemm(const LinearWeight& w, int64_t rows) {
  const Isa isa = ActiveIsa();
  if (w.kind == LinearKind::kFp4Row32) {
    return isa == Isa::kAvx512Bf16 && rows >= internal::kFp4FmaMinRows && w.fp4_tiles != nullptr &&
           internal::FmaGemmPreferred();
  }
  if (rows < internal::kGemmMinRows) return false;
  if (internal::Bf16RowsKind(w)) {  // when its inputs are BF16 values
    return isa == Isa::kAvx512Bf16 && w.in % 8 == 0 && internal::FmaGemmPreferred();
  }
  if (w.in % 128 != 0) return false;
  if (w.kind == LinearKind::kFp8AsBf16) {  // when its inputs are in the exact range
    return isa == Isa::kAvx512Bf16 && internal::FmaGemmPreferred();
  }
  return w.kind == LinearKind::kFp8Block &&
         (isa == Isa::kAvx512 || (isa == Isa::kAvx512Bf16 && internal::FmaGemmPreferred()));
}

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

void Linear(ThreadPool& pool, const LinearWeight& w, const BF16* x, int64_t rows, BF16* y,
            Workspace* ws) {
  DSV4_CHECK(w.kind != LinearKind::kF32);
  internal::LinearScratch& s = ws->state().linear;
  PrepareInput(pool, w, x, rows, &s);
  LinearCall call;
  call.w = &w;
  call.x = s.values.data();
  call.xscale = s.scales.data();
  call.rows = rows;
  call.y = y;
  Run(pool, &s, call);
}

void LinearF32(ThreadPool& pool, const LinearWeight& w, const float* x, int64_t rows, float* y,
               Workspace* ws) {
  DSV4_CHECK(w.kind == LinearKind::kF32);
  LinearCall call;
  call.w = &w;
  call.x = x;
  call.rows = rows;
  call.y_f32 = y;
  Run(pool, &ws->state().linear, call);
}

void LinearBf16InF32(ThreadPool& pool, const LinearWeight& w, const BF16* x, int64_t rows, float* y,
                     Workspace* ws) {
  std::vector<float>& xf = ws->state().linear.promoted;
  GrowTo(xf, rows * w.in);
  for (int64_t i = 0; i < rows * w.in; ++i) xf[i] = Bf16ToF32(x[i]);
  LinearF32(pool, w, xf.data(), rows, y, ws);
}

}  // namespace dsv4::kernels
