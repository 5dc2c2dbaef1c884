#include "checkpoint/linear_format.h"

#include "core/check.h"

namespace dsv4::checkpoint {
namespace {

// The FP8 weight tile (spec §4.6): one scale per 128 x 128 block.
constexpr int64_t kTile = 128;
int64_t Tiles(int64_t n) { return (n + kTile - 1) / kTile; }

// The dtype a format stores its weight tensor in.
DType WeightDType(LinearFormat f) {
  switch (f) {
    case LinearFormat::kBf16: return DType::kBF16;
    case LinearFormat::kFp8E8M0:
    case LinearFormat::kFp8F32: return DType::kF8E4M3;
    case LinearFormat::kFp4E8M0: return DType::kI8;
    case LinearFormat::kFp4U8E8M0:
    case LinearFormat::kNvfp4: return DType::kU8;
  }
  return DType::kBF16;
}

// "A", "A or B", "A, B or C".
std::string Alternatives(std::span<const LinearFormat> formats) {
  std::string s;
  for (size_t i = 0; i < formats.size(); ++i) {
    if (i > 0) s += i + 1 == formats.size() ? " or " : ", ";
    s += LinearFormatName(formats[i]);
  }
  return s;
}

}  // namespace

bool IsFp4Format(LinearFormat f) {
  return f == LinearFormat::kFp4E8M0 || f == LinearFormat::kFp4U8E8M0 ||
         f == LinearFormat::kNvfp4;
}

std::string LinearFormatName(LinearFormat f) {
  switch (f) {
    case LinearFormat::kBf16: return "BF16";
    case LinearFormat::kFp8E8M0: return "F8_E4M3 + F8_E8M0 'scale'";
    case LinearFormat::kFp8F32: return "F8_E4M3 + F32 'weight_scale_inv'";
    case LinearFormat::kFp4E8M0: return "I8 (packed FP4) + F8_E8M0 'scale'";
    case LinearFormat::kFp4U8E8M0: return "U8 (packed FP4) + F8_E8M0 'scale'";
    case LinearFormat::kNvfp4:
      return "U8 (packed FP4) + F8_E4M3 'weight_scale' + F32 'weight_scale_2' (NVFP4)";
  }
  return "?";
}

std::vector<LinearTensor> LinearTensors(const std::string& module, LinearFormat format, int64_t out,
                                        int64_t in) {
  const std::string weight = module + ".weight";
  switch (format) {
    case LinearFormat::kBf16: return {{weight, DType::kBF16, {out, in}}};
    case LinearFormat::kFp8E8M0:
      return {{weight, DType::kF8E4M3, {out, in}},
              {module + ".scale", DType::kF8E8M0, {Tiles(out), Tiles(in)}}};
    case LinearFormat::kFp8F32:
      return {{weight, DType::kF8E4M3, {out, in}},
              {module + ".weight_scale_inv", DType::kF32, {Tiles(out), Tiles(in)}}};
    case LinearFormat::kFp4E8M0:
    case LinearFormat::kFp4U8E8M0:
      return {{weight, WeightDType(format), {out, in / 2}},
              {module + ".scale", DType::kF8E8M0, {out, in / 32}}};
    case LinearFormat::kNvfp4:
      return {{weight, DType::kU8, {out, in / 2}},
              {module + ".weight_scale", DType::kF8E4M3, {out, in / 16}},
              {module + ".weight_scale_2", DType::kF32, {}},
              {module + ".input_scale", DType::kF32, {}, /*optional=*/true}};
  }
  return {};
}

Result<LinearFormat> DetectLinearFormat(const TensorSource& source, const std::string& module,
                                        std::span<const LinearFormat> accepted) {
  DSV4_CHECK(!accepted.empty());
  const std::string weight = module + ".weight";
  DSV4_ASSIGN_OR_RETURN(TensorView w, source.Get(weight));
  std::vector<LinearFormat> fits;
  for (LinearFormat f : accepted) {
    if (WeightDType(f) == w.dtype) fits.push_back(f);
  }
  if (fits.empty()) {
    return Status::InvalidArgument(source.label() + ": tensor '" + weight + "' has dtype " +
                                   std::string(DTypeName(w.dtype)) + "; the linear '" + module +
                                   "' accepts " + Alternatives(accepted));
  }
  if (fits.size() == 1) return fits[0];
  std::string scales;
  for (LinearFormat f : fits) {
    const std::vector<LinearTensor> t = LinearTensors(module, f, 1, 1);
    if (t.size() < 2 || source.Has(t[1].name)) return f;
    scales += std::string(scales.empty() ? "" : " or ") + "'" + t[1].name + "' (" +
              std::string(DTypeName(t[1].dtype)) + ")";
  }
  return Status::NotFound(source.label() + ": tensor '" + weight + "' is " +
                          std::string(DTypeName(w.dtype)) + " but its scale is missing: expected " +
                          scales);
}

}  // namespace dsv4::checkpoint
