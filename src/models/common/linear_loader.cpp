#include "models/common/linear_loader.h"

#include "core/fp8.h"
#include "kernels/cpu/fp4_tiles.h"
#include "kernels/cpu/isa.h"

namespace dsv4::models {
namespace {

using kernels::LinearKind;
using kernels::LinearWeight;

// The FP8 weight tile (spec §4.6): one scale per 128 x 128 block.
constexpr int64_t kTile = 128;
int64_t Tiles(int64_t n) { return (n + kTile - 1) / kTile; }

}  // namespace

Result<LinearWeight> LinearLoader::Linear(const std::string& module, LinearFormat format,
                                          int64_t out, int64_t in) {
  if (checkpoint::IsFp4Format(format)) return Fp4(module, format, out, in);
  if (format == LinearFormat::kFp8F32 && in % kTile != 0) {
    return Status::InvalidArgument(src_.label() + ": tensor '" + module + ".weight' has " +
                                   std::to_string(in) + " in-features, expected a multiple " +
                                   "of 128 (FP8 activation blocks)");
  }
  return Stored(module, format, out, in);
}

Result<LinearWeight> LinearLoader::Linear(const std::string& module,
                                          std::span<const LinearFormat> accepted, int64_t out,
                                          int64_t in) {
  DSV4_ASSIGN_OR_RETURN(LinearFormat format, checkpoint::DetectLinearFormat(src_, module, accepted));
  return Linear(module, format, out, in);
}

Result<LinearWeight> LinearLoader::LinearAsBf16(const std::string& module, LinearFormat format,
                                                int64_t out, int64_t in, int64_t group_rows) {
  DSV4_ASSIGN_OR_RETURN(LinearWeight q, Stored(module, format, out, in));
  if (q.kind == LinearKind::kBf16) return q;
  if (q.scales != nullptr && group_rows % kTile == 0 &&
      kernels::Fp8AsBf16ScalesOk(q.scales, Tiles(out) * Tiles(in))) {
    q.kind = LinearKind::kFp8AsBf16;
    return q;
  }
  return LinearWeight{LinearKind::kBf16, out, in, nullptr, nullptr, Dequantize(q)};
}

Result<const BF16*> LinearLoader::DequantizedBf16(const std::string& module, LinearFormat format,
                                                  int64_t out, int64_t in) {
  DSV4_ASSIGN_OR_RETURN(LinearWeight q, Stored(module, format, out, in));
  if (q.kind == LinearKind::kBf16) return q.bf16;
  return Dequantize(q);
}

Result<const BF16*> LinearLoader::DequantizedBf16(const std::string& module,
                                                  std::span<const LinearFormat> accepted,
                                                  int64_t out, int64_t in) {
  DSV4_ASSIGN_OR_RETURN(LinearFormat format, checkpoint::DetectLinearFormat(src_, module, accepted));
  return DequantizedBf16(module, format, out, in);
}

Result<LinearWeight> LinearLoader::PromotedF32(const std::string& name, int64_t out, int64_t in) {
  LinearWeight w{LinearKind::kF32, out, in};
  DSV4_ASSIGN_OR_RETURN(w.bf16, View<BF16>(name, DType::kBF16, {out, in}));
  return w;
}

Result<LinearWeight> LinearLoader::Stored(const std::string& module, LinearFormat format,
                                          int64_t out, int64_t in) {
  LinearWeight w{LinearKind::kFp8Block, out, in};
  const std::string weight = module + ".weight";
  switch (format) {
    case LinearFormat::kBf16: {
      w.kind = LinearKind::kBf16;
      DSV4_ASSIGN_OR_RETURN(w.bf16, View<BF16>(weight, DType::kBF16, {out, in}));
      return w;
    }
    case LinearFormat::kFp8E8M0:
    case LinearFormat::kFp8F32: {
      DSV4_ASSIGN_OR_RETURN(w.codes, View<uint8_t>(weight, DType::kF8E4M3, {out, in}));
      const std::vector<int64_t> grid = {Tiles(out), Tiles(in)};  // one scale per tile
      if (format == LinearFormat::kFp8E8M0) {
        const std::string scale = module + ".scale";
        DSV4_ASSIGN_OR_RETURN(w.scales, View<uint8_t>(scale, DType::kF8E8M0, grid));
      } else {
        const std::string scale = module + ".weight_scale_inv";
        DSV4_ASSIGN_OR_RETURN(w.scales_f32, View<float>(scale, DType::kF32, grid));
      }
      return w;
    }
    case LinearFormat::kFp4E8M0:
    case LinearFormat::kFp4U8E8M0:
    case LinearFormat::kNvfp4:
      break;
  }
  return Status::InvalidArgument(src_.label() + ": tensor '" + weight +
                                 "' is an FP4 expert linear, expected BF16 or FP8 storage");
}

Result<LinearWeight> LinearLoader::Fp4(const std::string& module, LinearFormat format,
                                       int64_t out, int64_t in) {
  // The activation blocks (128) are whole numbers of scale blocks (16 or 32) and of the
  // kernels' 32-chunks, so one condition covers every FP4 format.
  if (in % kTile != 0) {
    return Status::InvalidArgument(src_.label() + ": tensor '" + module + ".weight' (" +
                                   checkpoint::LinearFormatName(format) + ") has " +
                                   std::to_string(in) + " in-features, expected a multiple of " +
                                   "128 (FP8 activation blocks)");
  }
  const std::vector<checkpoint::LinearTensor> t = checkpoint::LinearTensors(module, format, out, in);
  LinearWeight w{LinearKind::kFp4Row32, out, in};
  DSV4_ASSIGN_OR_RETURN(w.codes, View<uint8_t>(t[0].name, t[0].dtype, t[0].shape));
  DSV4_ASSIGN_OR_RETURN(w.scales, View<uint8_t>(t[1].name, t[1].dtype, t[1].shape));
  if (format == LinearFormat::kNvfp4) {
    w.kind = LinearKind::kNvfp4Row16;
    DSV4_ASSIGN_OR_RETURN(const float* global, View<float>(t[2].name, t[2].dtype, t[2].shape));
    w.global_scale = *global;
    if (!(w.global_scale > 0.0f)) {
      return Status::InvalidArgument(src_.label() + ": tensor '" + t[2].name + "' is " +
                                     std::to_string(w.global_scale) +
                                     ", expected a positive NVFP4 global scale");
    }
  }
  // MXFP4 and NVFP4 share the packed E2M1 codes and so the tile layout (the scales stay in
  // the checkpoint layout). Every other kernel path reads the checkpoint layout (they can
  // read tiles too, slowly, if the ISA changes later).
  if (kernels::ActiveIsa() == kernels::Isa::kAvx512Bf16 && kernels::Fp4TilesSupported(out, in)) {
    uint8_t* tiles = arena_.Alloc<uint8_t>(static_cast<size_t>(kernels::Fp4TilesBytes(out, in)));
    kernels::RepackFp4Tiles(w.codes, out, in, tiles);
    w.codes = nullptr;
    w.fp4_tiles = tiles;
  }
  return w;
}

const BF16* LinearLoader::Dequantize(const LinearWeight& w) {
  const int64_t out = w.out, in = w.in, cols = Tiles(in);
  BF16* b = arena_.Alloc<BF16>(static_cast<size_t>(out * in));
  for (int64_t r = 0; r < out; ++r) {
    for (int64_t k = 0; k < in; ++k) {
      const int64_t tile = (r / kTile) * cols + k / kTile;
      const float scale = w.scales_f32 != nullptr ? w.scales_f32[tile] : E8M0ToF32(w.scales[tile]);
      b[r * in + k] = F32ToBf16(E4M3ToF32(w.codes[r * in + k]) * scale);
    }
  }
  return b;
}

}  // namespace dsv4::models
