// The packed KV formats (core/kv_entry.h): byte layouts, and lossless packing of the values
// the models' simulation produces.
#include "core/kv_entry.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/bf16.h"
#include "core/quant.h"
#include "core/rng.h"

namespace dsv4 {
namespace {

TEST(KvEntryLayout, ByteSizesOfTheCachedFormats) {
  const KvEntryLayout entry{448, 64};  // V4: d = 512, rope 64
  EXPECT_EQ(entry.scales_offset(), 448);
  EXPECT_EQ(entry.rope_offset(), 455);
  EXPECT_EQ(entry.used_bytes(), 583);
  EXPECT_EQ(entry.bytes(), 584);
  EXPECT_EQ(IndexerKeyFp4Layout{128}.scales_offset(), 64);
  EXPECT_EQ(IndexerKeyFp4Layout{128}.bytes(), 68);
  EXPECT_EQ(IndexerKeyFp8Bytes(128), 132);
}

TEST(KvEntryCodec, PackingIsLosslessForTheSimulatedGrid) {
  Rng rng(9);
  for (int trial = 0; trial < 50; ++trial) {
    const int64_t nope = 448, rope = 64;
    std::vector<BF16> x(nope + rope);
    const double mag = std::exp(rng.Uniform(-12, 8));
    for (auto& v : x) v = F32ToBf16(static_cast<float>(rng.Normal() * mag));
    std::vector<uint8_t> packed(584);
    EncodeKvEntry(x.data(), nope, rope, packed.data());
    std::vector<float> back(nope + rope);
    DecodeKvEntry(packed.data(), nope, rope, back.data());
    std::vector<BF16> sim(x.begin(), x.begin() + nope);
    Fp8SimulateInplace(sim, kFp8KvBlock);
    for (int64_t k = 0; k < nope; ++k) ASSERT_EQ(F32ToBf16(back[k]).bits, sim[k].bits) << k;
    for (int64_t k = nope; k < nope + rope; ++k) ASSERT_EQ(F32ToBf16(back[k]).bits, x[k].bits);
    std::vector<BF16> key(x.begin(), x.begin() + 128);
    std::vector<uint8_t> kp(68);
    EncodeIndexerKeyFp4(key.data(), 128, kp.data());
    std::vector<float> kb(128);
    DecodeIndexerKeyFp4(kp.data(), 128, kb.data());
    Fp4SimulateInplace(key);
    for (int64_t k = 0; k < 128; ++k) ASSERT_EQ(F32ToBf16(kb[k]).bits, key[k].bits) << k;
  }
}

}  // namespace
}  // namespace dsv4
