// The linear-weight loader both models use (src/models/common/linear_loader.h), on small
// in-memory checkpoints: each storage format becomes the kernel view it names, the scales are
// checked with the messages the models have always given, and the BF16 uses of FP8 weights
// dequantise as the references do.
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "checkpoint/tensor_store.h"
#include "core/fp8.h"
#include "core/rng.h"
#include "models/common/linear_loader.h"

namespace dsv4::models {
namespace {

using checkpoint::OwnedTensor;
using kernels::LinearKind;
using ::testing::HasSubstr;

template <typename T>
OwnedTensor Tensor(std::string name, DType dtype, std::vector<int64_t> shape,
                   const std::vector<T>& values) {
  OwnedTensor t{std::move(name), dtype, std::move(shape), {}};
  t.data.resize(values.size() * sizeof(T));
  std::memcpy(t.data.data(), values.data(), t.data.size());
  return t;
}

// E4M3 codes that are finite (0x7F and 0xFF are NaN).
std::vector<uint8_t> Fp8Codes(Rng& rng, int64_t n) {
  std::vector<uint8_t> c(static_cast<size_t>(n));
  for (uint8_t& v : c) v = static_cast<uint8_t>(rng.Below(0x7F)) | (rng.Below(2) ? 0x80 : 0);
  return c;
}

struct Fixture {
  std::unique_ptr<checkpoint::TensorStore> store;
  checkpoint::WeightArena arena;
  std::unique_ptr<LinearLoader> loader;
};

std::unique_ptr<Fixture> Make(std::vector<OwnedTensor> tensors) {
  auto f = std::make_unique<Fixture>();
  f->store = checkpoint::TensorStore::Create("ckpt", std::move(tensors)).value();
  f->loader = std::make_unique<LinearLoader>(*f->store, f->arena);
  return f;
}

constexpr int64_t kOut = 256, kIn = 192;  // 2 x 2 tiles, the last one partial in `in`

TEST(LinearLoader, Bf16IsAViewOfTheCheckpoint) {
  std::vector<uint16_t> bits(kOut * kIn, 0x3F80);
  auto f = Make({Tensor("m.weight", DType::kBF16, {kOut, kIn}, bits)});
  kernels::LinearWeight w = f->loader->Linear("m", LinearFormat::kBf16, kOut, kIn).value();
  EXPECT_EQ(w.kind, LinearKind::kBf16);
  EXPECT_EQ(w.out, kOut);
  EXPECT_EQ(w.in, kIn);
  ASSERT_NE(w.bf16, nullptr);
  EXPECT_EQ(w.bf16[5].bits, 0x3F80);
  // Used as BF16 and dequantised, BF16 storage is the same view.
  EXPECT_EQ(f->loader->LinearAsBf16("m", LinearFormat::kBf16, kOut, kIn, 128).value().bf16,
            w.bf16);
  EXPECT_EQ(f->loader->DequantizedBf16("m", LinearFormat::kBf16, kOut, kIn).value(), w.bf16);
}

TEST(LinearLoader, Fp8WithE8M0ScalesAndItsBf16Uses) {
  Rng rng(1);
  const std::vector<uint8_t> codes = Fp8Codes(rng, kOut * kIn);
  const std::vector<uint8_t> scales = {127, 126, 130, 120};  // 1, 1/2, 8, 1/128
  auto f = Make({Tensor("m.weight", DType::kF8E4M3, {kOut, kIn}, codes),
                 Tensor("m.scale", DType::kF8E8M0, {2, 2}, scales)});
  LinearLoader& l = *f->loader;
  kernels::LinearWeight w = l.Linear("m", LinearFormat::kFp8E8M0, kOut, kIn).value();
  EXPECT_EQ(w.kind, LinearKind::kFp8Block);
  EXPECT_NE(w.codes, nullptr);
  EXPECT_NE(w.scales, nullptr);
  EXPECT_EQ(w.scales_f32, nullptr);
  // Groups on 128-row tiles: the FP8 bytes used as BF16; otherwise a dequantised copy.
  EXPECT_EQ(l.LinearAsBf16("m", LinearFormat::kFp8E8M0, kOut, kIn, 128).value().kind,
            LinearKind::kFp8AsBf16);
  kernels::LinearWeight d = l.LinearAsBf16("m", LinearFormat::kFp8E8M0, kOut, kIn, 64).value();
  EXPECT_EQ(d.kind, LinearKind::kBf16);
  for (int64_t r : {0, 127, 128, 255}) {
    for (int64_t k : {0, 127, 128, 191}) {
      const float want = E4M3ToF32(codes[r * kIn + k]) * E8M0ToF32(scales[(r / 128) * 2 + k / 128]);
      EXPECT_EQ(d.bf16[r * kIn + k].bits, F32ToBf16(want).bits) << r << ", " << k;
    }
  }
}

TEST(LinearLoader, Fp8WithF32ScalesAndItsBf16Uses) {
  Rng rng(2);
  const int64_t in = 256;
  const std::vector<uint8_t> codes = Fp8Codes(rng, kOut * in);
  const std::vector<float> scales = {0.75f, 1.5f, 0.001f, 3.0f};
  auto f = Make({Tensor("m.weight", DType::kF8E4M3, {kOut, in}, codes),
                 Tensor("m.weight_scale_inv", DType::kF32, {2, 2}, scales)});
  LinearLoader& l = *f->loader;
  kernels::LinearWeight w = l.Linear("m", LinearFormat::kFp8F32, kOut, in).value();
  EXPECT_EQ(w.kind, LinearKind::kFp8Block);
  EXPECT_NE(w.scales_f32, nullptr);
  EXPECT_EQ(w.scales, nullptr);
  // F32 scales never run as kFp8AsBf16.
  EXPECT_EQ(l.LinearAsBf16("m", LinearFormat::kFp8F32, kOut, in, 128).value().kind,
            LinearKind::kBf16);
  const BF16* d = l.DequantizedBf16("m", LinearFormat::kFp8F32, kOut, in).value();
  for (int64_t r : {0, 127, 128, 255}) {
    for (int64_t k : {0, 127, 128, 255}) {
      const float want = E4M3ToF32(codes[r * in + k]) * scales[(r / 128) * 2 + k / 128];
      EXPECT_EQ(d[r * in + k].bits, F32ToBf16(want).bits) << r << ", " << k;
    }
  }
}

TEST(LinearLoader, Fp8F32NeedsWholeActivationBlocksOnlyAsALinear) {
  Rng rng(3);
  auto f = Make({Tensor("m.weight", DType::kF8E4M3, {kOut, kIn}, Fp8Codes(rng, kOut * kIn)),
                 Tensor("m.weight_scale_inv", DType::kF32, {2, 2}, std::vector<float>(4, 1.0f))});
  Result<kernels::LinearWeight> r = f->loader->Linear("m", LinearFormat::kFp8F32, kOut, kIn);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "ckpt: tensor 'm.weight' has 192 in-features, expected a "
                                  "multiple of 128 (FP8 activation blocks)");
  EXPECT_TRUE(f->loader->DequantizedBf16("m", LinearFormat::kFp8F32, kOut, kIn).ok());
}

TEST(LinearLoader, BadScalesAreDataLossNamingTheTensor) {
  Rng rng(4);
  const std::vector<uint8_t> codes = Fp8Codes(rng, kOut * kIn);
  const std::vector<uint8_t> nan_second = {127, 0xFF, 1, 2};
  auto e8m0 = Make({Tensor("m.weight", DType::kF8E4M3, {kOut, kIn}, codes),
                    Tensor("m.scale", DType::kF8E8M0, {2, 2}, nan_second)});
  Status s = e8m0->loader->Linear("m", LinearFormat::kFp8E8M0, kOut, kIn).status();
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_EQ(s.message(), "ckpt: tensor 'm.scale' (F8_E8M0 [2, 2]) element 1 is NaN (bits 0xff), "
                         "expected finite values");

  const int64_t in = 256;
  auto f32 = Make({Tensor("m.weight", DType::kF8E4M3, {kOut, in}, Fp8Codes(rng, kOut * in)),
                   Tensor("m.weight_scale_inv", DType::kF32, {2, 2},
                          std::vector<float>{1.0f, 1.0f, INFINITY, 1.0f})});
  s = f32->loader->Linear("m", LinearFormat::kFp8F32, kOut, in).status();
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_EQ(s.message(), "ckpt: tensor 'm.weight_scale_inv' (F32 [2, 2]) element 2 is +Inf "
                         "(bits 0x7f800000), expected finite values");
  s = f32->loader->DequantizedBf16("m", LinearFormat::kFp8F32, kOut, in).status();
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
}

TEST(LinearLoader, Fp4ExpertsWithE8M0PerThirtyTwo) {
  const int64_t out = 128, in = 256;
  std::vector<uint8_t> packed(out * in / 2, 0x21), scales(out * in / 32, 127);
  auto f = Make({Tensor("e.weight", DType::kI8, {out, in / 2}, packed),
                 Tensor("e.scale", DType::kF8E8M0, {out, in / 32}, scales)});
  kernels::LinearWeight w = f->loader->Linear("e", LinearFormat::kFp4E8M0, out, in).value();
  EXPECT_EQ(w.kind, LinearKind::kFp4Row32);
  EXPECT_NE(w.scales, nullptr);
  EXPECT_TRUE(w.codes != nullptr || w.fp4_tiles != nullptr);
  // FP4 is only a linear: no BF16 use of it.
  Status s = f->loader->DequantizedBf16("e", LinearFormat::kFp4E8M0, out, in).status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  scales[7] = 0xFF;
  auto nan = Make({Tensor("e.weight", DType::kI8, {out, in / 2}, packed),
                   Tensor("e.scale", DType::kF8E8M0, {out, in / 32}, scales)});
  s = nan->loader->Linear("e", LinearFormat::kFp4E8M0, out, in).status();
  EXPECT_EQ(s.message(), "ckpt: tensor 'e.scale' (F8_E8M0 [128, 8]) element 7 is NaN (bits "
                         "0xff), expected finite values");
}

// Weights, not only scales: a NaN FP8 code (0x7F / 0xFF) or a NaN/Inf BF16 value is refused
// wherever the linear is read, and LoadOptions{.check_finite = false} lets them through.
TEST(LinearLoader, NonFiniteWeightsAreDataLossUnlessTheCheckIsOff) {
  Rng rng(5);
  std::vector<uint8_t> codes = Fp8Codes(rng, kOut * kIn);
  codes[kIn + 3] = 0xFF;  // row 1, column 3: -NaN
  const std::vector<uint8_t> scales(4, 127);
  auto fp8 = Make({Tensor("m.weight", DType::kF8E4M3, {kOut, kIn}, codes),
                   Tensor("m.scale", DType::kF8E8M0, {2, 2}, scales)});
  for (Status s : {fp8->loader->Linear("m", LinearFormat::kFp8E8M0, kOut, kIn).status(),
                   fp8->loader->LinearAsBf16("m", LinearFormat::kFp8E8M0, kOut, kIn, 128).status(),
                   fp8->loader->DequantizedBf16("m", LinearFormat::kFp8E8M0, kOut, kIn).status()}) {
    EXPECT_EQ(s.code(), StatusCode::kDataLoss);
    EXPECT_EQ(s.message(), "ckpt: tensor 'm.weight' (F8_E4M3 [256, 192]) element 195 is NaN "
                           "(bits 0xff), expected finite values");
  }
  LinearLoader unchecked(*fp8->store, fp8->arena, {.check_finite = false});
  EXPECT_TRUE(unchecked.Linear("m", LinearFormat::kFp8E8M0, kOut, kIn).ok());

  std::vector<uint16_t> bits(kOut * kIn, 0x3F80);
  bits[kOut * kIn - 1] = 0xFF80;  // -Inf, the last element
  auto bf16 = Make({Tensor("m.weight", DType::kBF16, {kOut, kIn}, bits),
                    Tensor("n.weight", DType::kBF16, {4}, std::vector<uint16_t>{0, 0x7FC1, 0, 0})});
  Status s = bf16->loader->Linear("m", LinearFormat::kBf16, kOut, kIn).status();
  EXPECT_EQ(s.message(), "ckpt: tensor 'm.weight' (BF16 [256, 192]) element 49151 is -Inf (bits "
                         "0xff80), expected finite values");
  s = bf16->loader->PromotedF32("m.weight", kOut, kIn).status();
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  s = bf16->loader->F32("n.weight", DType::kBF16, {4}).status();
  EXPECT_EQ(s.message(), "ckpt: tensor 'n.weight' (BF16 [4]) element 1 is NaN (bits 0x7fc1), "
                         "expected finite values");
}

TEST(LinearLoader, MissingAndMisshapenTensorsAreNamed) {
  auto f = Make({Tensor("m.weight", DType::kBF16, {4, 8}, std::vector<uint16_t>(32))});
  Status s = f->loader->Linear("x", LinearFormat::kBf16, 4, 8).status();
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("x.weight"));
  s = f->loader->Linear("m", LinearFormat::kBf16, 8, 4).status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("m.weight"));
  kernels::LinearWeight p = f->loader->PromotedF32("m.weight", 4, 8).value();
  EXPECT_EQ(p.kind, LinearKind::kF32);
  EXPECT_NE(p.bf16, nullptr);
  EXPECT_EQ(p.f32, nullptr);
}

// The format read from the tensors present (checkpoint::DetectLinearFormat), one case per row:
// which tensors sit in the checkpoint, which formats the caller accepts, and what comes out.
struct DetectCase {
  const char* name;
  std::vector<OwnedTensor> tensors;
  std::vector<LinearFormat> accepted;
  LinearKind kind;                // when ok
  bool f32_scales;                // when ok: F32 (weight_scale_inv) rather than E8M0 scales
  StatusCode code;                // kOk, or the error
  std::vector<std::string> says;  // substrings of the error
};

std::vector<DetectCase> DetectCases() {
  constexpr int64_t in = 256;
  Rng rng(5);
  const OwnedTensor bf16 = Tensor("m.weight", DType::kBF16, {kOut, in},
                                  std::vector<uint16_t>(kOut * in, 0x3F80));
  const OwnedTensor fp8 = Tensor("m.weight", DType::kF8E4M3, {kOut, in}, Fp8Codes(rng, kOut * in));
  const OwnedTensor i8 = Tensor("m.weight", DType::kI8, {kOut, in}, Fp8Codes(rng, kOut * in));
  const OwnedTensor inv = Tensor("m.weight_scale_inv", DType::kF32, {2, 2},
                                 std::vector<float>(4, 0.5f));
  const OwnedTensor e8m0 = Tensor("m.scale", DType::kF8E8M0, {2, 2}, std::vector<uint8_t>(4, 127));
  const std::vector<LinearFormat> v32 = {LinearFormat::kFp8F32, LinearFormat::kBf16};
  const std::vector<LinearFormat> fp8_any = {LinearFormat::kFp8E8M0, LinearFormat::kFp8F32};
  const StatusCode ok = StatusCode::kOk;
  return {
      {"bf16 among fp8 or bf16", {bf16}, v32, LinearKind::kBf16, false, ok, {}},
      {"fp8 among fp8 or bf16", {fp8, inv}, v32, LinearKind::kFp8Block, true, ok, {}},
      // A leftover scale beside a BF16 weight does not make it FP8.
      {"bf16 with a stray scale", {bf16, inv}, v32, LinearKind::kBf16, false, ok, {}},
      // Of two FP8 formats, the one whose scale is present.
      {"fp8 with an e8m0 scale", {fp8, e8m0}, fp8_any, LinearKind::kFp8Block, false, ok, {}},
      {"fp8 with an f32 scale", {fp8, inv}, fp8_any, LinearKind::kFp8Block, true, ok, {}},
      {"i8 weight", {i8, inv}, v32, LinearKind::kBf16, false, StatusCode::kInvalidArgument,
       {"ckpt: tensor 'm.weight' has dtype I8; the linear 'm' accepts "
        "F8_E4M3 + F32 'weight_scale_inv' or BF16"}},
      {"bf16 where only fp8 runs", {bf16}, {LinearFormat::kFp8E8M0}, LinearKind::kBf16, false,
       StatusCode::kInvalidArgument, {"has dtype BF16", "accepts F8_E4M3 + F8_E8M0 'scale'"}},
      // One FP8 candidate: its own missing-scale error.
      {"fp8 without its scale", {fp8}, v32, LinearKind::kBf16, false, StatusCode::kNotFound,
       {"m.weight_scale_inv"}},
      {"fp8 without either scale", {fp8}, fp8_any, LinearKind::kBf16, false,
       StatusCode::kNotFound, {"'m.scale' (F8_E8M0) or 'm.weight_scale_inv' (F32)"}},
      {"no weight", {inv}, v32, LinearKind::kBf16, false, StatusCode::kNotFound, {"m.weight"}},
      {"bf16 of the wrong shape",
       {Tensor("m.weight", DType::kBF16, {kOut, 128}, std::vector<uint16_t>(kOut * 128))}, v32,
       LinearKind::kBf16, false, StatusCode::kInvalidArgument,
       {"'m.weight' has shape [256, 128], expected [256, 256]"}},
  };
}

TEST(LinearLoader, FormatIsReadFromTheTensorsPresent) {
  for (const DetectCase& c : DetectCases()) {
    SCOPED_TRACE(c.name);
    auto f = Make(c.tensors);
    Result<kernels::LinearWeight> w = f->loader->Linear("m", c.accepted, kOut, 256);
    Result<const BF16*> d = f->loader->DequantizedBf16("m", c.accepted, kOut, 256);
    EXPECT_EQ(w.status().code(), c.code) << w.status().ToString();
    EXPECT_EQ(d.status().code(), c.code) << d.status().ToString();
    for (const std::string& m : c.says) EXPECT_THAT(w.status().message(), HasSubstr(m));
    if (!w.ok()) continue;
    EXPECT_EQ(w->kind, c.kind);
    EXPECT_EQ(w->scales_f32 != nullptr, c.f32_scales);
  }
}

}  // namespace
}  // namespace dsv4::models
