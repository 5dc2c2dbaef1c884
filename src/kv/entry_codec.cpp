#include "kv/entry_codec.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/fp4.h"
#include "core/fp8.h"
#include "core/quant.h"

namespace dsv4::kv {

void EncodeKvEntry(const BF16* x, int64_t d_nope, int64_t rope_dim, uint8_t* out) {
  uint8_t* scales = out + d_nope;
  for (int64_t b = 0; b < d_nope / 64; ++b) {
    float amax = 0.0f;
    for (int64_t k = b * 64; k < (b + 1) * 64; ++k) amax = std::max(amax, std::fabs(Bf16ToF32(x[k])));
    const float s = Ue8m0Scale(std::max(amax, kFp8AmaxFloor), kE4M3Max);
    for (int64_t k = b * 64; k < (b + 1) * 64; ++k) {
      out[k] = F32ToE4M3(std::clamp(Bf16ToF32(x[k]) / s, -kE4M3Max, kE4M3Max));
    }
    scales[b] = E8M0FromPow2(s);
  }
  std::memcpy(out + d_nope + d_nope / 64, x + d_nope, static_cast<size_t>(rope_dim) * sizeof(BF16));
  const int64_t used = d_nope + d_nope / 64 + 2 * rope_dim;
  const int64_t padded = (used + 7) / 8 * 8;
  std::memset(out + used, 0, static_cast<size_t>(padded - used));
}

void DecodeKvEntry(const uint8_t* in, int64_t d_nope, int64_t rope_dim, float* out) {
  const uint8_t* scales = in + d_nope;
  for (int64_t k = 0; k < d_nope; ++k) out[k] = E4M3ToF32(in[k]) * E8M0ToF32(scales[k / 64]);
  const uint8_t* rope = in + d_nope + d_nope / 64;
  for (int64_t k = 0; k < rope_dim; ++k) {
    BF16 b;
    std::memcpy(&b, rope + 2 * k, sizeof(b));
    out[d_nope + k] = Bf16ToF32(b);
  }
}

void EncodeIndexerKeyFp4(const BF16* x, int64_t dim, uint8_t* out) {
  uint8_t* scales = out + dim / 2;
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
  const uint8_t* scales = in + dim / 2;
  for (int64_t k = 0; k < dim; k += 2) {
    const float s = E8M0ToF32(scales[k / 32]);
    out[k] = E2M1ToF32(E2M1Low(in[k / 2])) * s;
    out[k + 1] = E2M1ToF32(E2M1High(in[k / 2])) * s;
  }
}

}  // namespace dsv4::kv
