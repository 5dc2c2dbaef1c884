// The roofline bound of `dsv4 bench decode`: the work model (entry and key counts of the
// engine's decode path, multiply-adds, cache bytes) on tiny and real configs with numbers
// worked out by hand, the bound arithmetic for given limits, the bound the bench attaches to
// each layer type, and its JSON fields. Machine limits are given, never measured here, so
// nothing depends on the speed of the machine.
#include "bench/decode_bound.h"

#include <gtest/gtest.h>

#include <vector>

#include "bench/decode_cost.h"
#include "bench/decode_json.h"
#include "bench/roofline.h"
#include "checkpoint/presets.h"

namespace dsv4::bench {
namespace {

using checkpoint::LayerKind;

checkpoint::ModelConfig Preset(const char* name) { return checkpoint::PresetConfig(name).value(); }

// 1 byte/ns read; FMA 1e8 flop/s; VDPBF16PS 4e8 flop/s; mul+add 5e7 flop/s.
MachineLimits GivenLimits() {
  return {.read_bytes_per_s = 1e9, .muladd_flops = 5e7, .fma_flops = 1e8, .bf16_flops = 4e8};
}

// v4-tiny: 8 heads of 128 (64 FP8 + 64 RoPE: 200 B entries), window 32, indexer 4 x 128
// (68 B FP4 keys), top-8.
TEST(DecodeBound, V4TinyWorkByLayerType) {
  const checkpoint::ModelConfig c = Preset("v4-tiny");
  // pos 99 sees 100 tokens: 25 compressed CSA keys, the top 8 of them, 32 window rows.
  DecodeKernelWork w = DecodeKernelWorkPerLayer(c, LayerKind::kCsa, 99);
  EXPECT_EQ(w.indexer_keys, 25);
  EXPECT_EQ(w.indexer_bytes, 25 * 68);
  EXPECT_EQ(w.indexer_macs, 25 * 4 * 128);
  EXPECT_EQ(w.attention_entries, 32 + 8);
  EXPECT_EQ(w.attention_bytes, 40 * 200);
  EXPECT_EQ(w.attention_macs, 8 * 128 * 40 * 2);
  // Fewer compressed keys than top-k: all are kept, the scan still runs.
  w = DecodeKernelWorkPerLayer(c, LayerKind::kCsa, 10);
  EXPECT_EQ(w.indexer_keys, 2);
  EXPECT_EQ(w.attention_entries, 11 + 2);
  // HCA at pos 299: 2 compressed entries (every one) + 32 window rows, no indexer.
  w = DecodeKernelWorkPerLayer(c, LayerKind::kHca, 299);
  EXPECT_EQ(w.indexer_keys, 0);
  EXPECT_EQ(w.indexer_macs, 0);
  EXPECT_EQ(w.attention_entries, 34);
  EXPECT_EQ(w.attention_bytes, 34 * 200);
  // SWA: the window only.
  w = DecodeKernelWorkPerLayer(c, LayerKind::kSwa, 5);
  EXPECT_EQ(w.indexer_bytes, 0);
  EXPECT_EQ(w.attention_entries, 6);
  EXPECT_EQ(w.attention_macs, 8 * 128 * 6 * 2);
}

// v3.2-tiny: 4 heads, latent 128 + RoPE 64 (260 B records), indexer 4 x 128 (132 B FP8
// keys), top-16.
TEST(DecodeBound, V32TinyWork) {
  const checkpoint::ModelConfig c = Preset("v3.2-tiny");
  // 16 visible tokens fit the top-16: no scan, every record.
  DecodeKernelWork w = DecodeKernelWorkPerLayer(c, LayerKind::kSwa, 15);
  EXPECT_EQ(w.indexer_keys, 0);
  EXPECT_EQ(w.attention_entries, 16);
  EXPECT_EQ(w.attention_bytes, 16 * 260);
  EXPECT_EQ(w.attention_macs, 4 * 192 * 16 * 2);
  w = DecodeKernelWorkPerLayer(c, LayerKind::kSwa, 99);
  EXPECT_EQ(w.indexer_keys, 100);
  EXPECT_EQ(w.indexer_bytes, 100 * 132);
  EXPECT_EQ(w.indexer_macs, 100 * 4 * 128);
  EXPECT_EQ(w.attention_entries, 16);
}

// The work of the real shapes at 1M (the token at position 2^20 - 1).
TEST(DecodeBound, RealShapesAt1M) {
  const int64_t T = int64_t{1} << 20;
  DecodeKernelWork w = DecodeKernelWorkPerLayer(Preset("v4-flash"), LayerKind::kCsa, T - 1);
  EXPECT_EQ(w.indexer_keys, T / 4);
  EXPECT_EQ(w.indexer_macs, (T / 4) * 64 * 128);
  EXPECT_EQ(w.attention_entries, 128 + 512);
  EXPECT_EQ(w.attention_macs, 64 * 512 * 640 * 2);
  w = DecodeKernelWorkPerLayer(Preset("v4-flash"), LayerKind::kHca, T - 1);
  EXPECT_EQ(w.attention_entries, 128 + T / 128);
  w = DecodeKernelWorkPerLayer(Preset("v3.2"), LayerKind::kSwa, T - 1);
  EXPECT_EQ(w.indexer_macs, T * 64 * 128);
  EXPECT_EQ(w.indexer_bytes, T * 132);
  EXPECT_EQ(w.attention_macs, int64_t{128} * (512 + 64) * 2048 * 2);
  EXPECT_EQ(w.attention_bytes, 2048 * 656);
}

// The bound's bytes are the KV-read model's, kernel by kernel.
TEST(DecodeBound, BytesAreTheKvReadModel) {
  for (const char* name : {"v4-tiny", "v3.2-tiny", "v4-flash", "v4-pro", "v3.2"}) {
    const checkpoint::ModelConfig c = Preset(name);
    for (LayerKind kind : {LayerKind::kSwa, LayerKind::kCsa, LayerKind::kHca}) {
      for (int64_t pos : {0, 3, 31, 127, 2047, 2048, 100000}) {
        const DecodeKernelWork w = DecodeKernelWorkPerLayer(c, kind, pos);
        EXPECT_EQ(w.indexer_bytes + w.attention_bytes, DecodeKvBytesPerLayer(c, kind, pos))
            << name << " pos " << pos;
      }
    }
  }
}

TEST(DecodeBound, ArithmeticForGivenLimits) {
  const MachineLimits m = GivenLimits();
  // v4-tiny CSA at pos 99, 1 MB of weights. FMA peak: indexer 25600 flops / 1e8 = 0.256 ms
  // (> 1700 B / 1e9), attention 163840 / 1e8 = 1.6384 ms (> 8000 B), weights 1e6 / 1e9 = 1 ms.
  const DecodeKernelWork w = DecodeKernelWorkPerLayer(Preset("v4-tiny"), LayerKind::kCsa, 99);
  DecodeBound b = DecodeBoundPerLayer(w, 1'000'000, m, Peak::kFma);
  EXPECT_DOUBLE_EQ(b.weights_ms, 1.0);
  EXPECT_DOUBLE_EQ(b.indexer_ms, 0.256);
  EXPECT_DOUBLE_EQ(b.attention_ms, 1.6384);
  EXPECT_DOUBLE_EQ(b.total_ms(), 2.8944);
  // VDPBF16PS at 4e8: a quarter of the compute time.
  b = DecodeBoundPerLayer(w, 1'000'000, m, Peak::kBf16Dot);
  EXPECT_DOUBLE_EQ(b.indexer_ms, 0.064);
  EXPECT_DOUBLE_EQ(b.attention_ms, 0.4096);
  // Memory-bound at 1e6 B/s: indexer 1700 B -> 1.7 ms, attention 8000 B -> 8 ms.
  MachineLimits slow = m;
  slow.read_bytes_per_s = 1e6;
  b = DecodeBoundPerLayer(w, 1000, slow, Peak::kFma);
  EXPECT_DOUBLE_EQ(b.weights_ms, 1.0);
  EXPECT_DOUBLE_EQ(b.indexer_ms, 1.7);
  EXPECT_DOUBLE_EQ(b.attention_ms, 8.0);
  // No VDPBF16PS on the machine: its peak falls back to mul+add.
  MachineLimits no_bf16 = m;
  no_bf16.bf16_flops = 0;
  EXPECT_DOUBLE_EQ(PeakFlops(no_bf16, Peak::kBf16Dot), 5e7);
  EXPECT_DOUBLE_EQ(PeakFlops(m, Peak::kBf16Dot), 4e8);
  EXPECT_DOUBLE_EQ(RooflineSeconds(m, 2e9, 1e8, Peak::kFma), 2.0);
  EXPECT_DOUBLE_EQ(RooflineSeconds(m, 1e9, 3e8, Peak::kFma), 3.0);
  EXPECT_EQ(DecodePeak(kernels::Isa::kAvx512Bf16), Peak::kBf16Dot);
  EXPECT_EQ(DecodePeak(kernels::Isa::kAvx512), Peak::kFma);
  EXPECT_EQ(DecodePeak(kernels::Isa::kScalar), Peak::kFma);
  EXPECT_EQ(PeakName(Peak::kBf16Dot), "VDPBF16PS");
}

// The limits measure on a small buffer with every ISA's loads (no threshold: only that the
// measurement runs and yields a rate).
TEST(DecodeBound, LimitsMeasure) {
  ThreadPool pool(2);
  std::vector<uint8_t> buf(size_t{8} << 20, 1);
  for (kernels::Isa isa : {kernels::Isa::kScalar, kernels::Isa::kAvx2, kernels::Isa::kAvx512,
                           kernels::Isa::kAvx512Bf16}) {
    if (!kernels::IsaSupported(isa)) continue;
    EXPECT_GT(MeasureReadBandwidth(pool, buf.data(), static_cast<int64_t>(buf.size()), isa), 0.0)
        << kernels::IsaName(isa);
  }
  if (kernels::IsaSupported(kernels::Isa::kAvx2)) {
    EXPECT_GT(MeasureFmaPeak(pool, 1000, kernels::Isa::kAvx2), 0.0);
    EXPECT_GT(MeasureMulAddPeak(pool, 1000, kernels::Isa::kAvx2), 0.0);
  }
  if (kernels::IsaSupported(kernels::Isa::kAvx512Bf16)) {
    EXPECT_GT(MeasureBf16DotPeak(pool, 1000), 0.0);
  }
  // The L1-fed FMA loop: a rate with AVX-512, 0 (not measured) without it.
  if (kernels::IsaSupported(kernels::Isa::kAvx512)) {
    EXPECT_GT(MeasureL1FmaPeak(pool, 100), 0.0);
  } else {
    EXPECT_EQ(MeasureL1FmaPeak(pool, 100), 0.0);
  }
}

// The bench attaches, per layer type, the bound at the timed position with the layer's own
// weight bytes; the full stack sums them by layer count.
TEST(DecodeBound, MeasureDecodeCarriesTheBound) {
  ThreadPool pool(2);
  for (const char* name : {"v4-tiny", "v3.2-tiny"}) {
    SCOPED_TRACE(name);
    const checkpoint::ModelConfig c = Preset(name);
    DecodeOptions o{.depths = {300}, .iters = 1, .limits = GivenLimits(), .peak = Peak::kFma};
    Result<DecodeReport> r = MeasureDecode(pool, c, name, o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    const DecodePoint& p = r->points[0];
    double full = 0;
    for (size_t g = 0; g < p.groups.size(); ++g) {
      const DecodeGroupCost& gc = p.groups[g];
      // The timed token follows the warm-up token: position 301.
      const DecodeBound b =
          DecodeBoundPerLayer(DecodeKernelWorkPerLayer(c, r->subset.groups[g].kind, 301),
                              gc.weight_bytes_per_layer, GivenLimits(), Peak::kFma);
      EXPECT_DOUBLE_EQ(gc.bound_weights_ms, b.weights_ms) << gc.name;
      EXPECT_DOUBLE_EQ(gc.bound_indexer_ms, b.indexer_ms) << gc.name;
      EXPECT_DOUBLE_EQ(gc.bound_attention_ms, b.attention_ms) << gc.name;
      EXPECT_GT(gc.bound_ms_per_layer(), 0.0);
      full += static_cast<double>(gc.full_count) * b.total_ms();
    }
    EXPECT_NEAR(p.bound_ms(), full, 1e-12 * full);
    EXPECT_DOUBLE_EQ(p.measured_over_bound(), p.full_ms() / p.bound_ms());
    // Without limits there is no bound.
    o.limits = {};
    r = MeasureDecode(pool, c, name, o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->points[0].bound_ms(), 0.0);
    EXPECT_EQ(r->points[0].measured_over_bound(), 0.0);
  }
  // Limits without the chosen peak cannot make a bound.
  DecodeOptions bad{.depths = {8}, .limits = {.read_bytes_per_s = 1e9}, .peak = Peak::kFma};
  EXPECT_EQ(MeasureDecode(pool, Preset("v4-tiny"), "t", bad).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(DecodeBound, JsonFields) {
  ThreadPool pool(2);
  std::vector<DecodeReport> reports;
  for (const char* name : {"v3.2-tiny", "v4-tiny"}) {
    Result<DecodeReport> r = MeasureDecode(
        pool, Preset(name), name,
        {.depths = {64, 300}, .iters = 1, .limits = GivenLimits(), .peak = Peak::kBf16Dot});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    reports.push_back(std::move(*r));
  }
  DecodeRunInfo run{.threads = 2,
                    .iters = 1,
                    .bandwidth = {.buffer_bytes = 1, .copy_gb_per_s = 1, .read_gb_per_s = 1},
                    .limits = GivenLimits(),
                    .peak = Peak::kBf16Dot,
                    .isa = kernels::Isa::kAvx512Bf16,
                    .baseline = 0};
  const nlohmann::json j = DecodeJson(reports, run);
  EXPECT_EQ(j["roofline"]["peak"], "VDPBF16PS");
  EXPECT_DOUBLE_EQ(j["roofline"]["peak_gflop_per_s"].get<double>(), 0.4);
  EXPECT_DOUBLE_EQ(j["roofline"]["read_gb_per_s"].get<double>(), 1.0);
  EXPECT_TRUE(j["roofline"].contains("bound"));
  EXPECT_EQ(j["isa"], "avx512bf16");
  EXPECT_EQ(j["not_run"], kDecodeNotRun);
  ASSERT_EQ(j["models"].size(), 2u);
  for (size_t m = 0; m < 2; ++m) {
    const nlohmann::json& points = j["models"][m]["points"];
    ASSERT_EQ(points.size(), 2u);
    for (size_t i = 0; i < 2; ++i) {
      const DecodePoint& p = reports[m].points[i];
      const nlohmann::json& pj = points[i];
      EXPECT_DOUBLE_EQ(pj["bound_ms_per_token"].get<double>(), p.bound_ms());
      EXPECT_DOUBLE_EQ(pj["measured_over_bound"].get<double>(), p.measured_over_bound());
      EXPECT_GT(pj["bound_ms_per_token"].get<double>(), 0.0);
      EXPECT_TRUE(pj.contains("ms_per_token"));
      EXPECT_TRUE(pj.contains("vs_v32_time"));
      ASSERT_EQ(pj["layer_types"].size(), p.groups.size());
      for (size_t g = 0; g < p.groups.size(); ++g) {
        const nlohmann::json& gj = pj["layer_types"][g];
        EXPECT_DOUBLE_EQ(gj["bound_ms_per_layer"].get<double>(), p.groups[g].bound_ms_per_layer());
        EXPECT_DOUBLE_EQ(gj["bound_ms_per_layer_parts"]["weights"].get<double>(),
                         p.groups[g].bound_weights_ms);
        EXPECT_TRUE(gj["bound_ms_per_layer_parts"].contains("indexer"));
        EXPECT_TRUE(gj["bound_ms_per_layer_parts"].contains("attention"));
      }
    }
  }
}

}  // namespace
}  // namespace dsv4::bench
