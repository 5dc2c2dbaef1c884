// KV byte formulas against spec §13 and capacity.md §3 golden values.
#include "kv/layout.h"

#include <cmath>

#include <gtest/gtest.h>

#include "checkpoint/presets.h"

namespace dsv4::kv {
namespace {

using checkpoint::LayerKind;
using checkpoint::ModelConfig;
using checkpoint::PresetConfig;

constexpr int64_t k1M = 1048576;

ModelConfig Preset(const char* name) { return PresetConfig(name).value(); }

// Growing components plus the window term, without compressor state (spec §13.2 basis).
int64_t KvWithoutState(const ModelConfig& c, const KvFormats& f, int64_t n) {
  int64_t bytes = 0;
  for (const KvComponent& comp : ComputeKvFootprint(c, f, n).components) {
    if (comp.name.find("compressor_state") == std::string::npos) bytes += comp.bytes();
  }
  return bytes;
}

TEST(KvLayout, EntryAndKeyBytes) {
  const ModelConfig flash = Preset("v4-flash");
  EXPECT_EQ(EntryBytes(flash, EntryFormat::kFp8), 584);  // 448 + 7 + 128 -> 583 -> 584
  EXPECT_EQ(EntryBytes(flash, EntryFormat::kBf16), 1024);
  EXPECT_EQ(IndexerKeyBytes(128, IndexerFormat::kFp4), 68);
  EXPECT_EQ(IndexerKeyBytes(128, IndexerFormat::kFp8), 132);
  EXPECT_EQ(IndexerKeyBytes(128, IndexerFormat::kBf16), 256);
  const ModelConfig v32 = Preset("v3.2");
  EXPECT_EQ(MlaRecordBytes(v32, MlaFormat::kFp8), 656);
  EXPECT_EQ(MlaRecordBytes(v32, MlaFormat::kBf16), 1152);
  // Tiny: 64 FP8 + 1 scale + 128 RoPE = 193 -> 200.
  EXPECT_EQ(EntryBytes(checkpoint::TinyV4Config(), EntryFormat::kFp8), 200);
}

TEST(KvLayout, CompressorState) {
  const ModelConfig flash = Preset("v4-flash");
  EXPECT_EQ(CompressorStateBytes(flash, LayerKind::kCsa, false), 80 * 1024);
  EXPECT_EQ(CompressorStateBytes(flash, LayerKind::kHca, false), 512 * 1024);
  EXPECT_EQ(CompressorStateBytes(flash, LayerKind::kSwa, false), 0);
  EXPECT_EQ(CompressorStateBytes(flash, LayerKind::kHca, true), 256 * 1024);
  // Spec §13.2: 11.64 MiB Flash, 17.84 MiB Pro of fixed compressor state; rings 3.07 / 4.35 MiB.
  for (auto [name, state_mib, ring_mib] :
       {std::tuple{"v4-flash", 11.64, 3.07}, std::tuple{"v4-pro", 17.84, 4.35}}) {
    const KvFootprint fp = ComputeKvFootprint(Preset(name), DefaultKvFormats(checkpoint::Arch::kV4), k1M);
    double state = 0, ring = 0;
    for (const auto& c : fp.components) {
      if (c.name.find("compressor_state") != std::string::npos) state += c.bytes();
      if (c.name == "swa_window") ring += c.bytes();
    }
    EXPECT_NEAR(state / (1 << 20), state_mib, 0.005) << name;
    EXPECT_NEAR(ring / (1 << 20), ring_mib, 0.005) << name;
  }
}

TEST(KvLayout, BytesPerTokenAtOneMillion) {
  // Spec §13.2 table (bytes / n rounded, window included, compressor state excluded).
  auto per_token = [](const ModelConfig& c, const KvFormats& f) {
    return std::llround(static_cast<double>(KvWithoutState(c, f, k1M)) / k1M);
  };
  const KvFormats v4 = DefaultKvFormats(checkpoint::Arch::kV4);
  KvFormats v4_fp8_idx = v4;
  v4_fp8_idx.indexer = IndexerFormat::kFp8;
  const KvFormats v32 = DefaultKvFormats(checkpoint::Arch::kV32);
  KvFormats v32_bf16 = v32;
  v32_bf16.mla = MlaFormat::kBf16;
  EXPECT_EQ(per_token(Preset("v3.2"), v32), 48068);
  EXPECT_EQ(per_token(Preset("v3.2"), v32_bf16), 78324);
  EXPECT_EQ(per_token(Preset("v4-flash"), v4), 3517);
  EXPECT_EQ(per_token(Preset("v4-flash"), v4_fp8_idx), 3853);
  EXPECT_EQ(per_token(Preset("v4-pro"), v4), 5036);
  EXPECT_EQ(per_token(Preset("v4-pro"), v4_fp8_idx), 5516);
  EXPECT_DOUBLE_EQ(GrowingBytesPerToken(Preset("v4-flash"), v4), 3514.25);
  EXPECT_DOUBLE_EQ(GrowingBytesPerToken(Preset("v4-pro"), v4), 5031.4375);
  EXPECT_DOUBLE_EQ(GrowingBytesPerToken(Preset("v3.2"), v32), 48068.0);
}

TEST(KvLayout, CapacityGoldenValuesAndRatios) {
  // capacity.md §3: decimal GB at 2^20 tokens.
  const double v32 = KvWithoutState(Preset("v3.2"), DefaultKvFormats(checkpoint::Arch::kV32), k1M);
  const double pro = KvWithoutState(Preset("v4-pro"), DefaultKvFormats(checkpoint::Arch::kV4), k1M);
  const double flash = KvWithoutState(Preset("v4-flash"), DefaultKvFormats(checkpoint::Arch::kV4), k1M);
  EXPECT_NEAR(v32 / 1e9, 50.40, 0.005);
  EXPECT_NEAR(pro / 1e9, 5.28, 0.005);
  EXPECT_NEAR(flash / 1e9, 3.69, 0.005);
  EXPECT_NEAR(pro / v32, 0.105, 0.0005);
  EXPECT_NEAR(flash / v32, 0.073, 0.0005);
  // BF16 variants: 9.62 GiB Pro, 6.72 GiB Flash.
  KvFormats bf16;
  bf16.entry = EntryFormat::kBf16;
  bf16.indexer = IndexerFormat::kBf16;
  EXPECT_NEAR(KvWithoutState(Preset("v4-pro"), bf16, k1M) / double(1 << 30), 9.62, 0.005);
  EXPECT_NEAR(KvWithoutState(Preset("v4-flash"), bf16, k1M) / double(1 << 30), 6.72, 0.005);
  // The seed's 35.6 GB: 61 x 584 B x 10^6 tokens, no indexer cache.
  KvFormats seed = DefaultKvFormats(checkpoint::Arch::kV32);
  seed.mla = MlaFormat::kV4Entry;
  seed.indexer = IndexerFormat::kNone;
  EXPECT_NEAR(KvWithoutState(Preset("v3.2"), seed, 1000000) / 1e9, 35.62, 0.005);
}

TEST(KvLayout, EntriesFollowCompressionBoundaries) {
  const ModelConfig c = checkpoint::TinyV4Config();  // window 32, 2 CSA + 2 HCA layers
  const KvFormats f = DefaultKvFormats(checkpoint::Arch::kV4);
  for (int64_t n : {0, 1, 3, 4, 5, 31, 32, 33, 127, 128, 129, 255, 256, 1000}) {
    const KvFootprint fp = ComputeKvFootprint(c, f, n);
    for (const auto& comp : fp.components) {
      if (comp.name == "swa_window") {
        EXPECT_EQ(comp.entries_per_layer, std::min<int64_t>(n, 32));
      } else if (comp.name == "csa_entries") {
        EXPECT_EQ(comp.entries_per_layer, n / 4) << n;
      } else if (comp.name == "hca_entries") {
        EXPECT_EQ(comp.entries_per_layer, n / 128) << n;
      }
    }
    EXPECT_EQ(fp.total_bytes(), fp.growing_bytes() + fp.fixed_bytes());
  }
}

}  // namespace
}  // namespace dsv4::kv
