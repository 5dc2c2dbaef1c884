// Planner golden values that do not depend on hardware: KV bytes per request (capacity.md §3,
// through the src/kv formulas) and parameters / weights per GPU (capacity.md §4).
#include <gtest/gtest.h>

#include "checkpoint/expert_shard.h"
#include "checkpoint/presets.h"
#include "dist/expert_map.h"
#include "plan/capacity.h"
#include "plan/weights.h"

namespace dsv4::plan {
namespace {

constexpr int64_t k1M = int64_t{1} << 20;
constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

checkpoint::ModelConfig Preset(const char* name) { return checkpoint::PresetConfig(name).value(); }

PlanOptions KvOptions(const char* name, bool compressor_state = false) {
  PlanOptions o;
  o.model_label = name;
  o.model = Preset(name);
  o.kv_formats = kv::DefaultKvFormats(o.model.arch);
  o.include_compressor_state = compressor_state;
  return o;
}

double KvGb(const PlanOptions& o, int64_t tokens) {
  return static_cast<double>(KvBytesPerRequest(o, tokens)) / 1e9;
}

TEST(PlanKv, HeadlineValuesAtOneMillion) {
  // capacity.md §0 / §3: V3.2 FP8 (656 + 132 B) 50.40 GB; V4 FP8 entries + FP4 indexer.
  EXPECT_NEAR(KvGb(KvOptions("v3.2"), k1M), 50.40, 0.005);
  EXPECT_NEAR(KvGb(KvOptions("v4-pro"), k1M), 5.28, 0.005);
  EXPECT_NEAR(KvGb(KvOptions("v4-flash"), k1M), 3.69, 0.005);
  EXPECT_NEAR(static_cast<double>(KvBytesPerRequest(KvOptions("v3.2"), k1M)) / kGiB, 46.94, 0.005);
  // The engine also allocates the compressor state: 17.84 MiB Pro, 11.64 MiB Flash (§13.2).
  const double pro_state = static_cast<double>(KvBytesPerRequest(KvOptions("v4-pro", true), k1M) -
                                               KvBytesPerRequest(KvOptions("v4-pro"), k1M));
  EXPECT_NEAR(pro_state / (1 << 20), 17.84, 0.005);
  const double flash_state =
      static_cast<double>(KvBytesPerRequest(KvOptions("v4-flash", true), k1M) -
                          KvBytesPerRequest(KvOptions("v4-flash"), k1M));
  EXPECT_NEAR(flash_state / (1 << 20), 11.64, 0.005);
}

TEST(PlanKv, FormatVariants) {
  PlanOptions pro = KvOptions("v4-pro"), flash = KvOptions("v4-flash");
  pro.kv_formats.indexer = flash.kv_formats.indexer = kv::IndexerFormat::kFp8;
  EXPECT_NEAR(KvGb(pro, k1M), 5.78, 0.005);
  EXPECT_NEAR(KvGb(flash, k1M), 4.04, 0.005);
  // BF16 (vLLM blog basis): 9.62 GiB Pro, 6.72 GiB Flash; V3.2 83.88 GiB.
  for (PlanOptions* o : {&pro, &flash}) {
    o->kv_formats.entry = kv::EntryFormat::kBf16;
    o->kv_formats.indexer = kv::IndexerFormat::kBf16;
  }
  EXPECT_NEAR(static_cast<double>(KvBytesPerRequest(pro, k1M)) / kGiB, 9.62, 0.005);
  EXPECT_NEAR(static_cast<double>(KvBytesPerRequest(flash, k1M)) / kGiB, 6.72, 0.005);
  PlanOptions v32 = KvOptions("v3.2");
  v32.kv_formats.mla = kv::MlaFormat::kBf16;
  v32.kv_formats.indexer = kv::IndexerFormat::kBf16;
  EXPECT_NEAR(static_cast<double>(KvBytesPerRequest(v32, k1M)) / kGiB, 83.88, 0.005);
  // §3.1 rows without the indexer cache, at 2^20 and at 10^6 tokens.
  v32.kv_formats.indexer = kv::IndexerFormat::kNone;
  struct Row {
    kv::MlaFormat mla;
    int64_t bytes;
    double gb_1m, gb_1e6;
  };
  for (const Row& r : {Row{kv::MlaFormat::kFp8, 656, 41.96, 40.02},
                       Row{kv::MlaFormat::kAllFp8NoScale, 576, 36.84, 35.14},
                       Row{kv::MlaFormat::kV4Entry, 584, 37.35, 35.62}}) {
    v32.kv_formats.mla = r.mla;
    EXPECT_EQ(kv::MlaRecordBytes(v32.model, r.mla), r.bytes);
    EXPECT_NEAR(KvGb(v32, k1M), r.gb_1m, 0.005) << r.bytes;
    EXPECT_NEAR(KvGb(v32, 1000000), r.gb_1e6, 0.005) << r.bytes;
  }
}

TEST(PlanKv, LengthTable) {
  // capacity.md §3.2 "KV size versus context length" (state excluded, as there).
  const int64_t lengths[] = {8192, 32768, 131072, 262144, 524288, k1M};
  const double v32[] = {0.39, 1.58, 6.30, 12.60, 25.20, 50.40};
  const double pro[] = {0.046, 0.169, 0.664, 1.324, 2.642, 5.280};
  const double flash[] = {0.032, 0.118, 0.464, 0.924, 1.846, 3.688};
  for (int i = 0; i < 6; ++i) {
    EXPECT_NEAR(KvGb(KvOptions("v3.2"), lengths[i]), v32[i], 0.005) << lengths[i];
    EXPECT_NEAR(KvGb(KvOptions("v4-pro"), lengths[i]), pro[i], 0.0005) << lengths[i];
    EXPECT_NEAR(KvGb(KvOptions("v4-flash"), lengths[i]), flash[i], 0.0005) << lengths[i];
  }
}

TEST(PlanKv, AsymptoticRatesByComponentSumToTheKvFormula) {
  for (const char* name : {"v3.2", "v4-pro", "v4-flash"}) {
    PlanOptions o = KvOptions(name, true);
    o.gpu.hbm_bytes = 279e9;
    o.layout = {.tp = 1, .dp = 16, .ep = 16};
    o.expert_dtype = NativeExpertDtype(o.model);
    Result<CapacityPlan> p = PlanCapacity(o);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    double sum = 0;
    for (const KvRate& r : p->kv_rates) sum += r.bytes_per_token;
    EXPECT_DOUBLE_EQ(sum, p->kv_bytes_per_token) << name;
    EXPECT_DOUBLE_EQ(sum, kv::GrowingBytesPerToken(o.model, o.kv_formats)) << name;
  }
}

TEST(PlanWeights, ParameterCountsFromTensorShapes) {
  const ParamBreakdown pro = CountParams(Preset("v4-pro"));
  EXPECT_EQ(pro.routed + pro.routed_mtp, 1572763336704);  // capacity.md §4, incl. MTP
  EXPECT_EQ(pro.mtp_tied, 0);  // V4's MTP shares the embedding and head in the checkpoint too
  EXPECT_NEAR(pro.other_total(true) / 1e9, 24.22, 0.005);
  EXPECT_NEAR((pro.embedding + pro.head) / 1e9, 1.85, 0.005);
  const ParamBreakdown v32 = CountParams(Preset("v3.2"));
  EXPECT_NEAR(v32.routed_total(true) / 1e9, 665.18, 0.005);
  EXPECT_NEAR(v32.other_total(true) / 1e9, 16.46, 0.01);
  EXPECT_EQ(v32.mtp_tied, v32.embedding + v32.head);  // the MTP copies, not loaded twice
  const ParamBreakdown flash = CountParams(Preset("v4-flash"));
  EXPECT_NEAR(flash.routed_total(true) / 1e9, 283.47, 0.005);
  EXPECT_NEAR(flash.other_total(true) / 1e9, 6.41, 0.01);
  EXPECT_NEAR((flash.embedding + flash.head) / 1e9, 1.06, 0.005);
}

TEST(PlanWeights, PerGpuUnderDep16MatchesSection4) {
  // capacity.md §4: experts / replicated / W_gpu in GB, shown to 0.1 GB. The parts are within
  // the rounding; the totals are sums of rounded parts, hence 0.06.
  struct Row {
    const char* model;
    ExpertDtype dtype;
    double experts, replicated, total;
  };
  const ParallelLayout dep16{.tp = 1, .dp = 16, .ep = 16};
  for (const Row& r : {Row{"v3.2", ExpertDtype::kFp8, 41.6, 20.2, 61.8},
                       Row{"v3.2", ExpertDtype::kNvfp4, 23.4, 20.2, 43.6},
                       Row{"v4-pro", ExpertDtype::kMxfp4, 52.2, 27.9, 80.1},
                       Row{"v4-flash", ExpertDtype::kMxfp4, 9.4, 8.5, 17.9}}) {
    const checkpoint::ModelConfig c = Preset(r.model);
    const WeightsPerGpu w =
        ComputeWeightsPerGpu(c, CountParams(c), r.dtype, dep16, true, DenseBasis::kFp8);
    EXPECT_NEAR(w.routed_experts / 1e9, r.experts, 0.05) << r.model;
    EXPECT_NEAR(w.replicated() / 1e9, r.replicated, 0.05) << r.model;
    EXPECT_NEAR(w.total() / 1e9, r.total, 0.06) << r.model;
  }
  // §5.1 "other layouts": DEP8 W = 132 GB (Pro), 27 GB (Flash).
  const ParallelLayout dep8{.tp = 1, .dp = 8, .ep = 8};
  const checkpoint::ModelConfig pro = Preset("v4-pro"), flash = Preset("v4-flash");
  EXPECT_NEAR(
      ComputeWeightsPerGpu(pro, CountParams(pro), ExpertDtype::kMxfp4, dep8, true, DenseBasis::kFp8)
              .total() / 1e9,
      132, 0.5);
  EXPECT_NEAR(
      ComputeWeightsPerGpu(flash, CountParams(flash), ExpertDtype::kMxfp4, dep8, true,
                           DenseBasis::kFp8)
              .total() / 1e9,
      27, 0.5);
}

TEST(PlanWeights, LayoutSplitsAndOptions) {
  const checkpoint::ModelConfig c = Preset("v4-pro");
  const ParamBreakdown p = CountParams(c);
  const WeightsPerGpu dep16 =
      ComputeWeightsPerGpu(c, p, ExpertDtype::kMxfp4, {.tp = 1, .dp = 16, .ep = 16}, true, DenseBasis::kStored);
  // TP splits the non-expert weights; experts are spread over all 16 GPUs either way.
  const WeightsPerGpu tp2 =
      ComputeWeightsPerGpu(c, p, ExpertDtype::kMxfp4, {.tp = 2, .dp = 8, .ep = 16}, true, DenseBasis::kStored);
  EXPECT_DOUBLE_EQ(tp2.routed_experts, dep16.routed_experts);
  EXPECT_DOUBLE_EQ(tp2.replicated(), dep16.replicated() / 2);
  EXPECT_DOUBLE_EQ(dep16.experts_per_gpu, 24);
  // 32 redundant experts over 384 add 1/12 of the expert share.
  const WeightsPerGpu red = ComputeWeightsPerGpu(
      c, p, ExpertDtype::kMxfp4, {.tp = 1, .dp = 16, .ep = 16, .redundant_experts = 32}, true,
      DenseBasis::kStored);
  EXPECT_NEAR(red.routed_experts / dep16.routed_experts, 416.0 / 384.0, 1e-12);
  EXPECT_DOUBLE_EQ(red.experts_per_gpu, 26);
  const WeightsPerGpu no_mtp =
      ComputeWeightsPerGpu(c, p, ExpertDtype::kMxfp4, {.tp = 1, .dp = 16, .ep = 16}, false, DenseBasis::kStored);
  EXPECT_LT(no_mtp.total(), dep16.total());
  EXPECT_DOUBLE_EQ(BytesPerParam(ExpertDtype::kMxfp4), 0.53125);
  EXPECT_DOUBLE_EQ(BytesPerParam(ExpertDtype::kNvfp4), 0.5625);
  EXPECT_NEAR(BytesPerParam(ExpertDtype::kFp8), 1.00024, 1e-5);
  EXPECT_EQ(NativeExpertDtype(Preset("v3.2")), ExpertDtype::kFp8);
  EXPECT_EQ(NativeExpertDtype(c), ExpertDtype::kMxfp4);
}

TEST(PlanWeights, StoredBasisIsWhatEachExpertParallelRankHolds) {
  // `dsv4 plan --layout depN` against `dsv4 inspect --preset X --ep N` (the stored tensors of
  // the official layout, drafter included, contiguous expert ranges): to the byte.
  for (auto [model, n] : {std::pair{"v4-flash", 8}, {"v4-pro", 16}}) {
    const checkpoint::ModelConfig c = Preset(model);
    const checkpoint::ShardBytes held = checkpoint::CountShardBytes(
        checkpoint::NativeTensors(c, /*include_drafter=*/true),
        dist::ExpertMap::Contiguous(c.n_routed_experts, n).value());
    const ParallelLayout dep{.tp = 1, .dp = n, .ep = n};
    const WeightsPerGpu w = ComputeWeightsPerGpu(c, CountParams(c), NativeExpertDtype(c), dep,
                                                 true, DenseBasis::kStored);
    EXPECT_EQ(w.replicated(), static_cast<double>(held.replicated)) << model;
    for (int r = 0; r < n; ++r) {
      EXPECT_EQ(w.routed_experts, static_cast<double>(held.experts[static_cast<size_t>(r)])) << model;
      EXPECT_EQ(w.total(), static_cast<double>(held.total(r))) << model;
    }
    // capacity.md §4's FP8 simplification prices the BF16/F32/I64 small tensors at FP8:
    // 1.5-1.8% under.
    const WeightsPerGpu fp8 = ComputeWeightsPerGpu(c, CountParams(c), NativeExpertDtype(c), dep,
                                                   true, DenseBasis::kFp8);
    EXPECT_EQ(fp8.routed_experts, w.routed_experts) << model;
    EXPECT_GT(w.total() / fp8.total(), 1.01) << model;
    EXPECT_LT(w.total() / fp8.total(), 1.02) << model;
  }
  // V3.2 (one rank): every stored byte but the MTP module's own BF16 copies of the embedding
  // and head, which the planner leaves out (shared with the main model, not loaded twice).
  const checkpoint::ModelConfig v32 = Preset("v3.2");
  const ParamBreakdown p32 = CountParams(v32);
  const checkpoint::ShardBytes all32 = checkpoint::CountShardBytes(
      checkpoint::NativeTensors(v32, /*include_drafter=*/true),
      dist::ExpertMap::Contiguous(v32.n_routed_experts, 1).value());
  EXPECT_EQ(ComputeWeightsPerGpu(v32, p32, NativeExpertDtype(v32), {}, true, DenseBasis::kStored)
                .total(),
            static_cast<double>(all32.total(0) - 2 * p32.mtp_tied));
  EXPECT_EQ(ParseDenseBasis("fp8").value(), DenseBasis::kFp8);
  EXPECT_EQ(ParseDenseBasis("stored").value(), DenseBasis::kStored);
  EXPECT_FALSE(ParseDenseBasis("fp4").ok());
}

}  // namespace
}  // namespace dsv4::plan
