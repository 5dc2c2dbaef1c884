// bench layer: full V4 blocks of every type run end to end on the tiny preset in every step
// shape; the full-block weights count what the loaded formats hold; the bound, the whole-model
// sum, the other-machine rescaling and the speculative arithmetic on known inputs. No timing
// thresholds.
#include "bench/layer_cost.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "bench/attention_weights.h"
#include "bench/decode_bound.h"
#include "bench/decode_cost.h"
#include "bench/layer_subset.h"
#include "checkpoint/presets.h"

namespace dsv4::bench {
namespace {

using checkpoint::LayerKind;

checkpoint::ModelConfig Tiny() { return checkpoint::PresetConfig("v4-tiny").value(); }

MachineLimits KnownLimits() {
  MachineLimits m;
  m.read_bytes_per_s = 1e9;  // 1 GB/s
  m.muladd_flops = m.fma_flops = m.bf16_flops = 1e10;  // 10 GFLOP/s
  return m;
}

TEST(BenchLayer, TinyModelRunsEveryShapeOfEveryType) {
  ThreadPool pool(2);
  LayerBenchOptions o;
  o.batches = {1, 3};
  o.drafts = {1, 2};
  o.prefill = 9;
  o.depth = 40;  // past the tiny window (32) and several CSA/HCA entries
  o.iters = 1;
  o.limits = KnownLimits();
  o.peak = Peak::kBf16Dot;
  int64_t calls = 0, last_total = 0;
  o.progress = [&](int64_t done, int64_t total) {
    ++calls;
    EXPECT_EQ(done, calls);
    last_total = total;
  };
  const checkpoint::ModelConfig c = Tiny();
  Result<LayerBenchReport> r = MeasureLayers(pool, c, "v4-tiny", o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(calls, last_total);
  EXPECT_TRUE(r->complete());
  ASSERT_EQ(r->types.size(), 3u);
  EXPECT_EQ(r->types[0].name, "SWA");
  EXPECT_EQ(r->types[1].name, "CSA");
  EXPECT_EQ(r->types[2].name, "HCA");
  for (const LayerTypeCost& t : r->types) {
    SCOPED_TRACE(t.name);
    EXPECT_EQ(t.full_count, c.CountLayers(t.kind));
    // decode 1, 3; verify k = 0, 1, 2; prefill 9.
    ASSERT_EQ(t.steps.size(), 6u);
    for (const StepCost& s : t.steps) {
      EXPECT_GT(s.ms, 0.0);
      EXPECT_GT(s.tokens_per_s(), 0.0);
      EXPECT_GT(s.work.weight_bytes, static_cast<double>(t.dense_bytes));
      EXPECT_GT(s.work.kv_bytes, 0.0);
      EXPECT_GT(s.work.flops, 0.0);
      EXPECT_GE(s.work.experts_touched, 1.0);
      EXPECT_LE(s.work.experts_touched, static_cast<double>(c.n_routed_experts));
      EXPECT_DOUBLE_EQ(s.bound_ms, StepBoundMs(s.work, o.limits, o.peak));
    }
    EXPECT_NE(t.Find(StepMode::kDecode, 3), nullptr);
    EXPECT_NE(t.Find(StepMode::kVerify, 1), nullptr);
    EXPECT_NE(t.Find(StepMode::kVerify, 3), nullptr);
    EXPECT_NE(t.Find(StepMode::kPrefill, 9), nullptr);
    // A step of one sequence reads its cache once: KV bytes of the last row's position.
    const StepCost* v = t.Find(StepMode::kVerify, 3);
    EXPECT_GT(v->work.flops, t.Find(StepMode::kVerify, 1)->work.flops);
  }
  // The head at 1 (prefill's last row, the drafter), 2, 3 rows.
  ASSERT_EQ(r->heads.size(), 3u);
  for (const HeadCost& h : r->heads) EXPECT_GT(h.ms, 0.0);
  // Whole model = per type x layer count + head.
  const ModelStep m = WholeModelStep(*r, StepMode::kDecode, 3);
  double ms = r->Head(3)->ms, bound = r->Head(3)->bound_ms;
  for (const LayerTypeCost& t : r->types) {
    ms += static_cast<double>(t.full_count) * t.Find(StepMode::kDecode, 3)->ms;
    bound += static_cast<double>(t.full_count) * t.Find(StepMode::kDecode, 3)->bound_ms;
  }
  EXPECT_DOUBLE_EQ(m.ms, ms);
  EXPECT_DOUBLE_EQ(m.bound_ms, bound);
  // The same machine (bandwidth, threads) gives the same bound.
  EXPECT_NEAR(WholeModelBoundMsOn(*r, StepMode::kDecode, 3, {1e9, 2}, o.limits, o.peak, 2),
              m.bound_ms, 1e-9 * m.bound_ms);
  // The prefill's head runs on one row.
  EXPECT_GT(WholeModelStep(*r, StepMode::kPrefill, 9).ms, 0.0);
  EXPECT_GT(DraftMs(*r), 0.0);
  EXPECT_GT(SpeculativeTokensPerS(*r, 2, 0.7), 0.0);
}

TEST(BenchLayer, OneTypeIsNotExtrapolated) {
  ThreadPool pool(2);
  LayerBenchOptions o;
  o.kinds = {LayerKind::kHca};
  o.batches = {1};
  o.drafts = {1};
  o.prefill = 0;
  o.depth = 8;
  o.iters = 1;
  Result<LayerBenchReport> r = MeasureLayers(pool, Tiny(), "v4-tiny", o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->types.size(), 1u);
  EXPECT_FALSE(r->complete());
  EXPECT_EQ(r->types[0].Find(StepMode::kDecode, 1)->bound_ms, 0.0);  // no limits
  EXPECT_EQ(WholeModelStep(*r, StepMode::kDecode, 1).ms, 0.0);
  EXPECT_EQ(SpeculativeTokensPerS(*r, 1, 0.6), 0.0);
}

TEST(BenchLayer, BadOptionsAreRefused) {
  ThreadPool pool(1);
  LayerBenchOptions o;
  o.batches = {0};
  EXPECT_EQ(MeasureLayers(pool, Tiny(), "t", o).status().code(), StatusCode::kInvalidArgument);
  o.batches = {1};
  o.drafts = {0};
  EXPECT_EQ(MeasureLayers(pool, Tiny(), "t", o).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(MeasureLayers(pool, checkpoint::PresetConfig("v3.2-tiny").value(), "t", {})
                .status()
                .code(),
            StatusCode::kInvalidArgument);
}

TEST(BenchLayer, BoundArithmetic) {
  const MachineLimits m = KnownLimits();
  // Memory-bound: 2 GB at 1 GB/s = 2000 ms (flops 1e9 -> 100 ms).
  EXPECT_DOUBLE_EQ(StepBoundMs({.weight_bytes = 1.5e9, .kv_bytes = 0.5e9, .flops = 1e9}, m,
                               Peak::kFma),
                   2000.0);
  // Compute-bound: 1e11 flops at 1e10/s = 10 s.
  EXPECT_DOUBLE_EQ(StepBoundMs({.weight_bytes = 1e6, .kv_bytes = 0, .flops = 1e11}, m,
                               Peak::kFma),
                   10000.0);
}

TEST(BenchLayer, StepKvAndAttentionWork) {
  const checkpoint::ModelConfig c = Tiny();
  for (LayerKind k : {LayerKind::kSwa, LayerKind::kCsa, LayerKind::kHca}) {
    EXPECT_EQ(StepKvBytes(c, k, 100, 1), DecodeKvBytesPerLayer(c, k, 100));
    EXPECT_EQ(StepKvBytes(c, k, 100, 5), DecodeKvBytesPerLayer(c, k, 104));
    int64_t macs = 0;
    for (int64_t p = 100; p < 105; ++p) {
      const DecodeKernelWork w = DecodeKernelWorkPerLayer(c, k, p);
      macs += w.indexer_macs + w.attention_macs;
    }
    EXPECT_EQ(StepAttentionMacs(c, k, 100, 5), macs);
  }
}

TEST(BenchLayer, ExpectedTokensPerStep) {
  EXPECT_DOUBLE_EQ(ExpectedTokensPerStep(0.0, 4), 1.0);
  EXPECT_DOUBLE_EQ(ExpectedTokensPerStep(0.6, 1), 1.6);
  EXPECT_DOUBLE_EQ(ExpectedTokensPerStep(0.5, 2), 1.75);
  EXPECT_DOUBLE_EQ(ExpectedTokensPerStep(1.0, 3), 4.0);
}

TEST(BenchLayer, BlockWeightsCountTheLoadedFormats) {
  checkpoint::ModelConfig c = SingleLayerConfig(Tiny(), LayerKind::kCsa).value();
  const std::unique_ptr<V4BlockWeights> w = MakeV4BlockWeights(c, 0, 3);
  const int64_t D = c.hidden_size, I = c.moe_intermediate_size, E = c.n_routed_experts;
  ASSERT_EQ(static_cast<int64_t>(w->w.experts.size()), E);
  // MXFP4: half a byte per weight + one E8M0 scale per 32 (tiles pad rows to 16: none here).
  EXPECT_EQ(w->expert_bytes, 3 * (I * D / 2 + I * D / 32));
  EXPECT_EQ(w->expert_macs, 3 * I * D);
  EXPECT_EQ(w->w.experts[0].w1.kind, kernels::LinearKind::kFp4Row32);
  EXPECT_NE(w->w.gate_bias, nullptr);  // not a hash layer
  EXPECT_EQ(w->w.tid2eid, nullptr);
  EXPECT_GT(w->dense_bytes, w->attention_bytes);
  EXPECT_EQ(w->attention_bytes, MakeV4AttentionWeights(c, 0, 3)->buffers.linear_bytes());
  EXPECT_EQ(SingleLayerConfig(Tiny(), LayerKind::kCsa)->layer_kind(0), LayerKind::kCsa);
  EXPECT_EQ(SingleLayerConfig(Tiny(), LayerKind::kCsa)->num_hash_layers, 0);
  // V4-Pro has no SWA main layer; its MTP layer is one, and the drafter's cost needs it.
  const checkpoint::ModelConfig pro = checkpoint::PresetConfig("v4-pro").value();
  ASSERT_EQ(pro.CountLayers(LayerKind::kSwa), 0);
  ASSERT_EQ(pro.layer_kind(pro.num_hidden_layers), LayerKind::kSwa);
  EXPECT_EQ(SingleLayerConfig(pro, LayerKind::kSwa)->layer_kind(0), LayerKind::kSwa);
}

TEST(BenchLayer, Fp4FillIsTheSameOnAPool) {
  ThreadPool pool(2);
  WeightBuffers serial(5), pooled(5);
  const std::vector<kernels::LinearWeight> a = serial.Fp4(3, 32, 128, nullptr);
  const std::vector<kernels::LinearWeight> b = pooled.Fp4(3, 32, 128, &pool);
  EXPECT_EQ(serial.linear_bytes(), pooled.linear_bytes());
  ASSERT_EQ(a.size(), 3u);
  for (size_t i = 0; i < a.size(); ++i) {
    const bool tiled = a[i].fp4_tiles != nullptr;
    const uint8_t* pa = tiled ? a[i].fp4_tiles : a[i].codes;
    const uint8_t* pb = tiled ? b[i].fp4_tiles : b[i].codes;
    EXPECT_EQ(std::memcmp(pa, pb, 32 * 128 / 2), 0) << i;
    EXPECT_EQ(std::memcmp(a[i].scales, b[i].scales, 32 * 128 / 32), 0) << i;
    if (i > 0) {
      EXPECT_NE(std::memcmp(pa, tiled ? a[0].fp4_tiles : a[0].codes, 64), 0);
    }
  }
}

}  // namespace
}  // namespace dsv4::bench
