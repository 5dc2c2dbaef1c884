// bench decode: the engine's attention sublayers run end to end at depth on random weights and
// a synthetic cache (tiny presets, and real dimensions at a shallow depth); the KV-read model
// reproduces capacity.md §6.6; weight bytes are those of the loaded formats.
#include "bench/decode_cost.h"

#include <gtest/gtest.h>

#include "bench/attention_weights.h"
#include "checkpoint/presets.h"

namespace dsv4::bench {
namespace {

using checkpoint::LayerKind;

checkpoint::ModelConfig Preset(const char* name) { return checkpoint::PresetConfig(name).value(); }

void ExpectSane(const DecodeReport& r, const std::vector<int64_t>& depths) {
  ASSERT_EQ(r.points.size(), depths.size());
  EXPECT_GT(r.weight_bytes_ran, 0);
  for (size_t i = 0; i < depths.size(); ++i) {
    const DecodePoint& p = r.points[i];
    EXPECT_EQ(p.depth, depths[i]);
    EXPECT_GT(p.ran_ms(), 0.0);
    EXPECT_GE(p.full_ms(), p.ran_ms());
    EXPECT_GT(p.kv_bytes(), 0);
    EXPECT_GT(p.weight_bytes(), 0);
    EXPECT_GT(p.gb_per_s(), 0.0);
    ASSERT_EQ(p.groups.size(), r.subset.groups.size());
    for (const DecodeGroupCost& g : p.groups) {
      EXPECT_GT(g.ms_per_layer, 0.0) << g.name;
      EXPECT_EQ(g.ran_layers, 1) << g.name;
    }
  }
}

TEST(BenchDecode, TinyStacksRunEndToEnd) {
  ThreadPool pool(2);
  // Depths past index_topk (V3.2-tiny 16, V4-tiny 8 of the CSA entries) and past the window
  // (32), out of order; 41 is below where decoding at 40 left the cache, which is rebuilt.
  const std::vector<int64_t> depths = {300, 40, 41, 1000};
  for (const char* name : {"v4-tiny", "v3.2-tiny"}) {
    SCOPED_TRACE(name);
    Result<DecodeReport> r =
        MeasureDecode(pool, Preset(name), name, {.depths = depths, .iters = 1});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ExpectSane(*r, depths);
    // The timed token is at position depth + 1 (after the warm-up token).
    const DecodePoint& p = r->points[3];
    for (size_t g = 0; g < p.groups.size(); ++g) {
      EXPECT_EQ(p.groups[g].kv_bytes_per_layer,
                DecodeKvBytesPerLayer(Preset(name), r->subset.groups[g].kind, 1001));
    }
  }
}

TEST(BenchDecode, RealDimensionStacksRunAtShallowDepth) {
  ThreadPool pool(2);
  for (const char* name : {"v3.2", "v4-flash"}) {
    SCOPED_TRACE(name);
    // 2100 > 2048: V3.2 scans its indexer keys; V4 CSA keys (525) > top-k 512.
    Result<DecodeReport> r =
        MeasureDecode(pool, Preset(name), name, {.depths = {2100}, .iters = 1});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ExpectSane(*r, {2100});
    const DecodePoint& p = r->points[0];
    int64_t kv = 0;
    for (const LayerGroup& g : r->subset.groups) {
      kv += g.full_count * DecodeKvBytesPerLayer(Preset(name), g.kind, 2101);
    }
    EXPECT_EQ(p.kv_bytes(), kv);
  }
}

// capacity.md §6.6 at T = 2^20 (the token at position T - 1 sees T tokens): V3.2 8.5 GB,
// V4-Pro 0.71 GB, V4-Flash 0.48 GB of KV read per token.
TEST(BenchDecode, KvReadModelMatchesCapacitySection66) {
  const int64_t T = int64_t{1} << 20;
  auto stack = [&](const char* name) {
    const checkpoint::ModelConfig c = Preset(name);
    int64_t bytes = 0;
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
      bytes += DecodeKvBytesPerLayer(
          c, c.arch == checkpoint::Arch::kV4 ? c.layer_kind(l) : LayerKind::kSwa, T - 1);
    }
    return bytes;
  };
  EXPECT_EQ(stack("v3.2"), 61 * (T * 132 + 2048 * 656));
  EXPECT_EQ(stack("v4-pro"),
            30 * ((T / 4) * 68 + 1024 * 584) + 31 * (T / 128) * 584 + 61 * 128 * 584);
  EXPECT_EQ(stack("v4-flash"),
            21 * ((T / 4) * 68 + 512 * 584) + 20 * (T / 128) * 584 + 43 * 128 * 584);
  EXPECT_NEAR(static_cast<double>(stack("v3.2")) / 1e9, 8.5, 0.05);
  EXPECT_NEAR(static_cast<double>(stack("v4-pro")) / 1e9, 0.71, 0.01);
  EXPECT_NEAR(static_cast<double>(stack("v4-flash")) / 1e9, 0.48, 0.01);
  // Below top-k no V3.2 scan happens: only the records are read.
  EXPECT_EQ(DecodeKvBytesPerLayer(Preset("v3.2"), LayerKind::kSwa, 99), 100 * 656);
}

int64_t Fp8Bytes(int64_t out, int64_t in, int64_t scale_bytes) {
  return out * in + ((out + 127) / 128) * ((in + 127) / 128) * scale_bytes;
}

TEST(BenchDecode, WeightBytesAreThoseOfTheLoadedFormats) {
  const checkpoint::ModelConfig f = Preset("v4-flash");  // layer 2 is CSA
  ASSERT_EQ(f.layer_kind(2), LayerKind::kCsa);
  const auto w = MakeV4AttentionWeights(f, 2, 1);
  const int64_t D = 4096, Q = 1024;
  const int64_t attention = Fp8Bytes(Q, D, 1) + Fp8Bytes(64 * 512, Q, 1) + Fp8Bytes(512, D, 1) +
                            Fp8Bytes(8 * 1024, 64 * 512 / 8, 1) +  // wo_a (FP8 used as BF16)
                            Fp8Bytes(D, 8 * 1024, 1);              // wo_b
  // Compressors: BF16 bytes used as FP32 (kF32 over BF16).
  EXPECT_EQ(w->buffers.linear_bytes(), attention + 2 * 2 * (2 * 512) * D +  // compressor
                                           Fp8Bytes(64 * 128, Q, 1) + 2 * 64 * D +  // indexer
                                           2 * 2 * (2 * 128) * D);  // its compressor
  EXPECT_EQ(w->w.kind, LayerKind::kCsa);
  EXPECT_EQ(w->w.compressor.ratio, 4);
  const checkpoint::ModelConfig v = Preset("v3.2");
  const auto m = MakeV32AttentionWeights(v, 5, 1);
  const int64_t V = 7168, VQ = 1536;
  EXPECT_EQ(m->buffers.linear_bytes(),
            Fp8Bytes(VQ, V, 4) + Fp8Bytes(128 * 192, VQ, 4) + Fp8Bytes(576, V, 4) +
                Fp8Bytes(V, 128 * 128, 4) + 2 * 128 * 512 * 128 * 2 +  // o_proj, W_UK, W_UV
                Fp8Bytes(64 * 128, VQ, 4) + Fp8Bytes(128, V, 4) + 2 * 64 * V);
  EXPECT_EQ(m->w.attn.uk_t.size(), 128u);
}

TEST(BenchDecode, BandwidthAndBadRequests) {
  ThreadPool pool(2);
  const Bandwidth bw = MeasureBandwidth(pool, 32 << 20, 2);
  EXPECT_EQ(bw.buffer_bytes, 32 << 20);
  EXPECT_GT(bw.copy_gb_per_s, 0.0);
  EXPECT_GT(bw.read_gb_per_s, 0.0);
  EXPECT_FALSE(MeasureDecode(pool, Preset("v4-tiny"), "t", {.depths = {0}}).ok());
  EXPECT_FALSE(MeasureDecode(pool, Preset("v4-tiny"), "t", {.depths = {8}, .iters = 0}).ok());
  EXPECT_FALSE(MeasureDecode(pool, Preset("v4-flash"), "t", {.depths = {8}, .num_layers = 2}).ok());
  Result<DecodeReport> big = MeasureDecode(pool, Preset("v3.2"), "v3.2",
                                           {.depths = {int64_t{1} << 20}, .max_bytes = 1 << 20});
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.status().code(), StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace dsv4::bench
