#include "core/kv_entry.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/fp4.h"
#include "core/fp8.h"
#include "core/quant.h"

namespace dsv4 {

void EncodeKvEntry(const BF16* x, int64_t d_nope, int64_t rope_dim, uint8_t* out) {
  const KvEntryLayout layout{d_nope, rope_dim};
  uint8_t* scales = out + layout.scales_offset();
  for (int64_t b = 0; b < d_nope / 64; ++b) {
    float amax = 0.0f;
    for (int64_t k = b * 64; k < (b + 1) * 64; ++k) amax = std::max(amax, std::fabs(Bf16ToF32(x[k])));
    const float s = Ue8m0Scale(std::max(amax, kFp8AmaxFloor), kE4M3Max);
    for (int64_t k = b * 64; k < (b + 1) * 64; ++k) {
      out[k] = F32ToE4M3(std::clamp(Bf16ToF32(x[k]) / s, -kE4M3Max, kE4M3Max));
    }
    scales[b] = E8M0FromPow2(s);
  }
  std::memcpy(out + layout.rope_offset(), x + d_nope,
              static_cast<size_t>(rope_dim) * sizeof(BF16));
  std::memset(out + layout.used_bytes(), 0,
              static_cast<size_t>(layout.bytes() - layout.used_bytes()));
}

void DecodeKvEntry(const uint8_t* in, int64_t d_nope, int64_t rope_dim, float* out) {
  const KvEntryLayout layout{d_nope, rope_dim};
  const uint8_t* scales = in + layout.scales_offset();
  for (int64_t k = 0; k < d_nope; ++k) out[k] = E4M3ToF32(in[k]) * E8M0ToF32(scales[k / 64]);
  const uint8_t* rope = in + layout.rope_offset();
  for (int64_t k = 0; k < rope_dim; ++k) {
    BF16 b;
    std::memcpy(&b, rope + 2 * k, sizeof(b));
    out[d_nope + k] = Bf16ToF32(b);
  }
}

void EncodeIndexerKeyFp4(const BF16* x, int64_t dim, uint8_t* out) {
  uint8_t* scales = out + IndexerKeyFp4Layout{dim}.scales_offset();
  for (int64_t b = 0; b < dim / 32; ++b) {
    float amax = 0.0f;
    for (int64_t k = b * 32; k < (b + 1) * 32; ++k) amax = std::max(amax, std::fabs(Bf16ToF32(x[k])));
    const float s = Ue8m0Scale(std::max(amax, kFp4AmaxFloor), kE2M1Max);
    for (int64_t k = b * 32; k < (b + 1) * 32; k += 2) {
      const uint8_t lo = F32ToE2M1(std::clamp(Bf16ToF32(x[k]) / s, -kE2M1Max, kE2M1Max));
      const uint8_t hi = F32ToE2M1(std::clamp(Bf16ToF32(x[k + 1]) / s, -kE2M1Max, kE2M1Max));
      out[k / 2] = PackE2M1(lo, hi);
    }
    scales[b] = E8M0FromPow2(s);
  }
}

void DecodeIndexerKeyFp4(const uint8_t* in, int64_t dim, float* out) {
  const uint8_t* scales = in + IndexerKeyFp4Layout{dim}.scales_offset();
  for (int64_t k = 0; k < dim; k += 2) {
    const float s = E8M0ToF32(scales[k / 32]);
    out[k] = E2M1ToF32(E2M1Low(in[k / 2])) * s;
    out[k + 1] = E2M1ToF32(E2M1High(in[k / 2])) * s;
  }
}

void EncodeMlaRecord(const BF16* latent, int64_t kv_lora, const BF16* rope, int64_t rope_dim,
                     uint8_t* out) {
  const int64_t blocks = kv_lora / 128;
  for (int64_t b = 0; b < blocks; ++b) {
    float s = 0.0f;
    ActQuantFp8({latent + b * 128, 128}, kFp8ActBlock, {out + b * 128, 128}, {&s, 1});
    std::memcpy(out + kv_lora + 4 * b, &s, sizeof(s));
  }
  std::memcpy(out + kv_lora + 4 * blocks, rope, static_cast<size_t>(rope_dim) * sizeof(BF16));
}

void DecodeMlaRecord(const uint8_t* in, int64_t kv_lora, int64_t rope_dim, float* out) {
  const int64_t blocks = kv_lora / 128;
  for (int64_t b = 0; b < blocks; ++b) {
    float s;
    std::memcpy(&s, in + kv_lora + 4 * b, sizeof(s));
    for (int64_t k = b * 128; k < (b + 1) * 128; ++k) out[k] = E4M3ToF32(in[k]) * s;
  }
  const uint8_t* r = in + kv_lora + 4 * blocks;
  for (int64_t k = 0; k < rope_dim; ++k) {
    BF16 b;
    std::memcpy(&b, r + 2 * k, sizeof(b));
    out[kv_lora + k] = Bf16ToF32(b);
  }
}

void EncodeIndexerKeyFp8(const BF16* x, int64_t dim, uint8_t* out) {
  float s = 0.0f;
  const size_t n = static_cast<size_t>(dim);
  ActQuantFp8({x, n}, n, {out, n}, {&s, 1});
  std::memcpy(out + dim, &s, sizeof(s));
}

float DecodeIndexerKeyFp8(const uint8_t* in, int64_t dim, float* codes) {
  for (int64_t k = 0; k < dim; ++k) codes[k] = E4M3ToF32(in[k]);
  return IndexerKeyFp8Scale(in, dim);
}

float IndexerKeyFp8Scale(const uint8_t* in, int64_t dim) {
  float s;
  std::memcpy(&s, in + dim, sizeof(s));
  return s;
}

}  // namespace dsv4
