// Block quantisation as the reference does it (spec §4.4–4.6): power-of-two ("ue8m0") block
// scales, E4M3FN or E2M1 codes. The activation paths run inside the model; the weight
// quantisers build tiny checkpoints and test data in the official layouts (§12).
// All functions are pure and thread-compatible; sizes are checked with DSV4_CHECK (internal
// APIs: a wrong size is a bug). Activations: an inf element makes its block's scale inf and
// the whole block NaN, as in the reference kernel; NaN elements are ignored by amax and stay NaN.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "core/bf16.h"

namespace dsv4 {

inline constexpr size_t kFp8ActBlock = 128;     // §4.4: GEMM inputs, per contiguous 128 values
inline constexpr size_t kFp8KvBlock = 64;       // §4.4: KV FP8 simulation
inline constexpr size_t kFp4Block = 32;         // §4.5 and FP4 weights: 32 values per scale
inline constexpr int64_t kFp8WeightTile = 128;  // §4.6: one scale per 128x128 weight tile
inline constexpr float kFp8AmaxFloor = 1e-4f;   // §4.4 step 1
inline constexpr float kFp4AmaxFloor = 6.0f * 0x1p-126f;  // §4.5

// §4.4 step 2: s = 2^ceil(log2(fl32(amax * fl32(1 / max_code)))), read off the FP32 bit
// pattern of the product (its exponent, +1 if any mantissa bit is set), then rebuilt as the
// FP32 with exponent field e + 127, exactly like the reference's fast_round_scale.
// Requires amax > 0 and a finite max_code > 0 (DSV4_CHECK). Callers apply the amax floors
// first, which keep the product normal and the result a power of two >= 2^-126; a product
// above 2^127 (or amax = inf) gives inf.
float Ue8m0Scale(float amax, float max_code);

// §4.4 simulation path ("inplace" act_quant), used on KV entries with block 64: per contiguous
// block of `block` values, a = max(amax, 1e-4), s = Ue8m0Scale(a, 448),
// x_j <- bf16(E4M3_RNE(clamp(x_j / s, -448, 448)) * s). The last rounding is exact, except
// that |x| >= 1.75 * 2^127 can round up past the FP32 range to ±inf, as the reference's FP32
// multiply does (same for the FP4 simulation).
// x: BF16 [n], n a multiple of block.
void Fp8SimulateInplace(std::span<BF16> x, size_t block);

// §4.5 FP4 simulation (indexer q and k): blocks of 32, a = max(amax, 6 * 2^-126),
// s = Ue8m0Scale(a, 6), x_j <- bf16(E2M1_RNE(clamp(x_j / s, -6, 6)) * s).
// x: BF16 [n], n a multiple of 32.
void Fp4SimulateInplace(std::span<BF16> x);

// §4.4 steps 1-3, GEMM path: quantises x per contiguous block (block = 128 for every FP8
// linear) into E4M3 codes and the block's power-of-two scale (a float exactly 2^k, so
// E8M0FromPow2(scales[i]) is its E8M0 code).
// x: BF16 [n]; codes: E4M3 [n]; scales: F32 [n / block]; n a multiple of block.
void ActQuantFp8(std::span<const BF16> x, size_t block, std::span<uint8_t> codes,
                 std::span<float> scales);

// §4.6 FP8 weight layout: one E8M0 scale per 128x128 tile (edge tiles may be partial),
// s = Ue8m0Scale(max(amax_tile, 1e-4), 448), codes = E4M3_RNE(clamp(w / s, -448, 448)).
// w: F32 [rows, cols] row-major, finite (DSV4_CHECK); codes: E4M3 [rows, cols];
// scales_e8m0: E8M0 [ceil(rows/128), ceil(cols/128)].
void QuantizeFp8Block128(std::span<const float> w, int64_t rows, int64_t cols,
                         std::span<uint8_t> codes, std::span<uint8_t> scales_e8m0);

// Inverse of the above: out = E4M3ToF32(code) * E8M0ToF32(scale of the tile), computed in
// FP32. Exact whenever the product is an FP32 normal (always, for scales QuantizeFp8Block128
// produces); such values have <= 4 significant bits, so they are also exact in BF16 (the
// load-time wo_a dequantisation of §12.2 relies on this).
// codes: E4M3 [rows, cols]; scales_e8m0: E8M0 [ceil(rows/128), ceil(cols/128)];
// out: F32 [rows, cols].
void DequantizeFp8Block128(std::span<const uint8_t> codes, std::span<const uint8_t> scales_e8m0,
                           int64_t rows, int64_t cols, std::span<float> out);

// §4.6 FP4 weight layout (routed experts): one E8M0 scale per row per 32 columns,
// s = Ue8m0Scale(max(amax, 6 * 2^-126), 6), codes = E2M1_RNE(clamp(w / s, -6, 6)), two codes
// per byte, even column in the low nibble (§4.1).
// w: F32 [rows, cols] row-major, finite, cols % 32 == 0; packed: I8/U8 [rows, cols/2];
// scales_e8m0: E8M0 [rows, cols/32].
void QuantizeFp4Row32(std::span<const float> w, int64_t rows, int64_t cols,
                      std::span<uint8_t> packed, std::span<uint8_t> scales_e8m0);

// Inverse of the above: out = E2M1ToF32(code) * E8M0ToF32(scale), exact in FP32 (and BF16)
// for every scale in [2^-127, 2^125] (larger ones overflow to inf for code 7).
// packed: [rows, cols/2]; scales_e8m0: E8M0 [rows, cols/32]; out: F32 [rows, cols].
void DequantizeFp4Row32(std::span<const uint8_t> packed, std::span<const uint8_t> scales_e8m0,
                        int64_t rows, int64_t cols, std::span<float> out);

}  // namespace dsv4
