#include "models/v4/reference/weights.h"

#include <cstring>

#include "core/bf16.h"
#include "core/check.h"
#include "core/fp4.h"
#include "core/fp8.h"
#include "core/quant.h"
#include "checkpoint/checkpoint_layout.h"
#include "checkpoint/linear_format.h"
#include "models/v4/reference/numerics.h"

namespace dsv4::v4::reference {
namespace {

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Raw bytes of a checked tensor (the view may be unaligned, so copy).
Result<std::vector<uint8_t>> LoadBytes(const checkpoint::TensorSource& w, const std::string& name,
                                       DType dtype, std::vector<int64_t> shape) {
  DSV4_ASSIGN_OR_RETURN(checkpoint::TensorView v, w.Get(name, dtype, shape));
  std::vector<uint8_t> out(v.bytes.size());
  if (!out.empty()) std::memcpy(out.data(), v.bytes.data(), out.size());
  return out;
}

std::vector<BF16> ToBf16(std::span<const float> x) {
  std::vector<BF16> b(x.size());
  for (size_t i = 0; i < x.size(); ++i) b[i] = F32ToBf16(x[i]);
  return b;
}

// FP8 act-quant of a BF16-valued input per 128 (§4.4): the code values as FP32 and the
// per-block power-of-two scales.
void QuantizeInput(std::span<const float> x, std::vector<float>* qx, std::vector<float>* sx) {
  DSV4_CHECK(x.size() % kFp8ActBlock == 0);
  const std::vector<BF16> xb = ToBf16(x);
  std::vector<uint8_t> codes(x.size());
  sx->assign(x.size() / kFp8ActBlock, 0.0f);
  ActQuantFp8(xb, kFp8ActBlock, codes, *sx);
  qx->resize(x.size());
  for (size_t i = 0; i < x.size(); ++i) (*qx)[i] = E4M3ToF32(codes[i]);
}

std::vector<float> ApplyFp8(const Linear& l, std::span<const float> x) {
  std::vector<float> qx, sx;
  QuantizeInput(x, &qx, &sx);
  const int64_t num_kb = CeilDiv(l.in, kFp8WeightTile);
  std::vector<float> y(static_cast<size_t>(l.out));
  for (int64_t n = 0; n < l.out; ++n) {
    const float* wrow = l.w.data() + n * l.in;
    const float* srow = l.scale.data() + (n / kFp8WeightTile) * num_kb;
    float acc = 0.0f;
    for (int64_t b = 0; b < num_kb; ++b) {
      const float part = DotLanes8(qx.data() + b * kFp8WeightTile, wrow + b * kFp8WeightTile,
                                   kFp8WeightTile);
      // The kernel scales each 128-K partial sum by sx·Sw (formed first) before accumulating.
      acc += part * (sx[b] * srow[b]);
    }
    y[n] = RoundBf16(acc);
  }
  return y;
}

std::vector<float> ApplyFp4(const Linear& l, std::span<const float> x) {
  std::vector<float> qx, sx;
  QuantizeInput(x, &qx, &sx);
  constexpr int64_t kChunk = static_cast<int64_t>(kFp4Block);
  const int64_t num_chunks = l.in / kChunk;
  const bool nv = l.mode == LinearMode::kNvfp4;
  std::vector<float> y(static_cast<size_t>(l.out));
  for (int64_t n = 0; n < l.out; ++n) {
    const float* wrow = l.w.data() + n * l.in;
    const float* srow = l.scale.data() + n * num_chunks * (nv ? 2 : 1);
    if (nv) {
      float lane[8] = {};
      for (int64_t c = 0; c < num_chunks; ++c) {
        for (int64_t l8 = 0; l8 < 8; ++l8) {
          float half[2] = {0.0f, 0.0f};  // the lane's products in 16-blocks 2c and 2c + 1
          for (int64_t j = 0; j < 4; ++j) {
            const int64_t k = c * kChunk + l8 + 8 * j;
            half[j / 2] += qx[k] * wrow[k];
          }
          const float part = half[0] * srow[2 * c] + half[1] * srow[2 * c + 1];
          lane[l8] += part * sx[(c * kChunk) / static_cast<int64_t>(kFp8ActBlock)];
        }
      }
      y[n] = RoundBf16(((lane[0] + lane[1]) + (lane[2] + lane[3])) +
                       ((lane[4] + lane[5]) + (lane[6] + lane[7])));
      continue;
    }
    // Lane l = k mod 8 keeps its own sum across chunks: per chunk its 4 products (exact),
    // times the chunk's scale sx·Sw (formed first), added in chunk order; the lanes combine
    // at the end in the DotLanes8 tree.
    float lane[8] = {};
    for (int64_t c = 0; c < num_chunks; ++c) {
      const float s = sx[(c * kChunk) / static_cast<int64_t>(kFp8ActBlock)] * srow[c];
      for (int64_t l = 0; l < 8; ++l) {
        float part = 0.0f;
        for (int64_t k = c * kChunk + l; k < (c + 1) * kChunk; k += 8) part += qx[k] * wrow[k];
        lane[l] += part * s;
      }
    }
    y[n] = RoundBf16(((lane[0] + lane[1]) + (lane[2] + lane[3])) +
                     ((lane[4] + lane[5]) + (lane[6] + lane[7])));
  }
  return y;
}

// Plain dot products in the canonical lane order; BF16-rounded unless the mode is kF32.
std::vector<float> ApplyPlain(const Linear& l, std::span<const float> x, bool round) {
  std::vector<float> y(static_cast<size_t>(l.out));
  for (int64_t n = 0; n < l.out; ++n) {
    const float* wrow = l.w.data() + n * l.in;
    const float acc = DotLanes8(x.data(), wrow, static_cast<size_t>(l.in));
    y[n] = round ? RoundBf16(acc) : acc;
  }
  return y;
}

Result<Linear> LoadFp8Linear(const checkpoint::TensorSource& w, const std::string& name, int64_t out,
                             int64_t in) {
  DSV4_ASSIGN_OR_RETURN(std::vector<uint8_t> codes,
                        LoadBytes(w, name + ".weight", DType::kF8E4M3, {out, in}));
  DSV4_ASSIGN_OR_RETURN(
      std::vector<uint8_t> scales,
      LoadBytes(w, name + ".scale", DType::kF8E8M0, {CeilDiv(out, 128), CeilDiv(in, 128)}));
  Linear l{LinearMode::kFp8, out, in, std::vector<float>(codes.size()),
           std::vector<float>(scales.size())};
  for (size_t i = 0; i < codes.size(); ++i) l.w[i] = E4M3ToF32(codes[i]);
  for (size_t i = 0; i < scales.size(); ++i) l.scale[i] = E8M0ToF32(scales[i]);
  return l;
}

}  // namespace

std::vector<float> Apply(const Linear& l, std::span<const float> x) {
  DSV4_CHECK(static_cast<int64_t>(x.size()) == l.in);
  switch (l.mode) {
    case LinearMode::kFp8:
      return ApplyFp8(l, x);
    case LinearMode::kFp4:
    case LinearMode::kNvfp4:
      return ApplyFp4(l, x);
    case LinearMode::kBf16:
      return ApplyPlain(l, x, /*round=*/true);
    case LinearMode::kF32:
      return ApplyPlain(l, x, /*round=*/false);
  }
  DSV4_CHECK(false);
  return {};
}

std::string LayerPrefix(int64_t layer) { return "layers." + std::to_string(layer) + "."; }

Result<std::vector<float>> LoadFloats(const checkpoint::TensorSource& w, const std::string& name,
                                      DType dtype, std::vector<int64_t> shape) {
  DSV4_CHECK(dtype == DType::kF32 || dtype == DType::kBF16);
  DSV4_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, LoadBytes(w, name, dtype, shape));
  std::vector<float> out(static_cast<size_t>(checkpoint::NumElements(shape)));
  if (dtype == DType::kF32) {
    std::memcpy(out.data(), bytes.data(), bytes.size());
    return out;
  }
  for (size_t i = 0; i < out.size(); ++i) {
    BF16 b;
    std::memcpy(&b.bits, bytes.data() + 2 * i, 2);
    out[i] = Bf16ToF32(b);
  }
  return out;
}

Result<std::vector<int64_t>> LoadI64(const checkpoint::TensorSource& w, const std::string& name,
                                     std::vector<int64_t> shape) {
  DSV4_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, LoadBytes(w, name, DType::kI64, shape));
  std::vector<int64_t> out(static_cast<size_t>(checkpoint::NumElements(shape)));
  std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

Result<Linear> LoadDenseLinear(const checkpoint::ModelConfig& c, const checkpoint::TensorSource& w,
                               const std::string& name, int64_t out, int64_t in) {
  const std::vector<checkpoint::LinearFormat> accepted =
      checkpoint::AcceptedLinearFormats(c, checkpoint::WeightKind::kDenseLinear);
  DSV4_ASSIGN_OR_RETURN(checkpoint::LinearFormat f,
                        checkpoint::DetectLinearFormat(w, name, accepted));
  if (f == checkpoint::LinearFormat::kBf16) return LoadBf16Linear(w, name + ".weight", out, in);
  return LoadFp8Linear(w, name, out, in);
}

Result<Linear> LoadExpertLinear(const checkpoint::ModelConfig& c, const checkpoint::TensorSource& w,
                                const std::string& name, int64_t out, int64_t in) {
  const std::vector<checkpoint::LinearFormat> accepted =
      checkpoint::AcceptedLinearFormats(c, checkpoint::WeightKind::kExpertLinear);
  DSV4_ASSIGN_OR_RETURN(checkpoint::LinearFormat f,
                        checkpoint::DetectLinearFormat(w, name, accepted));
  if (f == checkpoint::LinearFormat::kBf16) return LoadBf16Linear(w, name + ".weight", out, in);
  const std::vector<checkpoint::LinearTensor> t = checkpoint::LinearTensors(name, f, out, in);
  DSV4_ASSIGN_OR_RETURN(std::vector<uint8_t> packed, LoadBytes(w, t[0].name, t[0].dtype, t[0].shape));
  DSV4_ASSIGN_OR_RETURN(std::vector<uint8_t> scales, LoadBytes(w, t[1].name, t[1].dtype, t[1].shape));
  const bool nv = f == checkpoint::LinearFormat::kNvfp4;
  Linear l{nv ? LinearMode::kNvfp4 : LinearMode::kFp4, out, in,
           std::vector<float>(static_cast<size_t>(out * in)), std::vector<float>(scales.size())};
  // Byte k/2 of a row: element k (even) in the low nibble, k+1 in the high nibble (§4.1).
  for (size_t i = 0; i < packed.size(); ++i) {
    l.w[2 * i] = E2M1ToF32(E2M1Low(packed[i]));
    l.w[2 * i + 1] = E2M1ToF32(E2M1High(packed[i]));
  }
  if (!nv) {
    for (size_t i = 0; i < scales.size(); ++i) l.scale[i] = E8M0ToF32(scales[i]);
    return l;
  }
  DSV4_ASSIGN_OR_RETURN(std::vector<float> global, LoadFloats(w, t[2].name, t[2].dtype, t[2].shape));
  for (size_t i = 0; i < scales.size(); ++i) l.scale[i] = E4M3ToF32(scales[i]) * global[0];
  return l;
}

Result<Linear> LoadWoA(const checkpoint::ModelConfig& c, const checkpoint::TensorSource& w,
                       const std::string& name, int64_t out, int64_t in) {
  DSV4_ASSIGN_OR_RETURN(Linear l, LoadDenseLinear(c, w, name, out, in));
  if (l.mode == LinearMode::kBf16) return l;
  // W[n,k] = code · scale[n/128][k/128]: ≤ 4 significant bits, exact in BF16.
  const int64_t num_kb = CeilDiv(in, 128);
  for (int64_t n = 0; n < out; ++n) {
    for (int64_t k = 0; k < in; ++k) {
      float& v = l.w[n * in + k];
      v = RoundBf16(v * l.scale[(n / 128) * num_kb + k / 128]);
    }
  }
  l.mode = LinearMode::kBf16;
  l.scale.clear();
  return l;
}

Result<Linear> LoadBf16Linear(const checkpoint::TensorSource& w, const std::string& tensor, int64_t out,
                              int64_t in) {
  DSV4_ASSIGN_OR_RETURN(std::vector<float> values, LoadFloats(w, tensor, DType::kBF16, {out, in}));
  return Linear{LinearMode::kBf16, out, in, std::move(values), {}};
}

Result<Linear> LoadF32Linear(const checkpoint::TensorSource& w, const std::string& tensor, DType dtype,
                             int64_t out, int64_t in) {
  DSV4_ASSIGN_OR_RETURN(std::vector<float> values, LoadFloats(w, tensor, dtype, {out, in}));
  return Linear{LinearMode::kF32, out, in, std::move(values), {}};
}

}  // namespace dsv4::v4::reference
