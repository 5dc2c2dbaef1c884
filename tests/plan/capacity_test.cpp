// Concurrency, budgets, max context and the decode floor against capacity.md §5-§6, and the
// seed's "35.6 GB / 4 requests" under the seed's own assumptions.
#include "plan/capacity.h"

#include <gtest/gtest.h>

#include <cmath>

#include "plan/args.h"

namespace dsv4::plan {
namespace {

constexpr int64_t k1M = int64_t{1} << 20;

PlanRequest Request(const std::string& model, const std::string& hw,
                    const std::string& layout = "dep16") {
  PlanRequest r;
  r.models = {model};
  r.hardware = {hw};
  r.layout = layout;
  return r;
}

Result<CapacityPlan> TryPlan(const PlanRequest& r) {
  Result<std::vector<PlanOptions>> o = ResolvePlanRequest(r, nullptr);
  if (!o.ok()) return o.status();
  EXPECT_EQ(o->size(), 1u);
  return PlanCapacity(o->front());
}

CapacityPlan Plan(const PlanRequest& r) {
  Result<CapacityPlan> p = TryPlan(r);
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return std::move(p).value();
}

struct Row51 {
  const char* model;
  const char* expert_dtype;
  const char* hw;
  bool nominal;
  double budget_gb;
  int64_t per_gpu, per_group, per_rack;
};

// capacity.md §5.1 (DEP16, util 0.90, workspace 8 GB, 2^20 tokens).
const Row51 kTable51[] = {
    {"v3.2", "fp8", "gb200", false, 97.6, 1, 16, 64},
    {"v3.2", "fp8", "gb200", true, 103.0, 2, 32, 128},
    {"v3.2", "fp8", "gb300", false, 181.3, 3, 48, 192},
    {"v3.2", "fp8", "gb300", true, 189.4, 3, 48, 192},
    {"v3.2", "nvfp4", "gb200", false, 115.8, 2, 32, 128},
    {"v3.2", "nvfp4", "gb300", false, 199.5, 3, 48, 192},
    {"v3.2", "nvfp4", "gb300", true, 207.6, 4, 64, 256},
    {"v4-pro", "mxfp4", "gb200", false, 79.3, 15, 240, 960},
    {"v4-pro", "mxfp4", "gb200", true, 84.7, 16, 256, 1024},
    {"v4-pro", "mxfp4", "gb300", false, 163.0, 30, 480, 1920},
    {"v4-pro", "mxfp4", "gb300", true, 171.1, 32, 512, 2048},
    {"v4-flash", "mxfp4", "gb200", false, 141.5, 38, 608, 2432},
    {"v4-flash", "mxfp4", "gb200", true, 146.9, 39, 624, 2496},
    {"v4-flash", "mxfp4", "gb300", false, 225.2, 61, 976, 3904},
    {"v4-flash", "mxfp4", "gb300", true, 233.3, 63, 1008, 4032},
};

TEST(PlanCapacity, Section51TableExactOnTheSpecsBasis) {
  // The spec's KV per request leaves the V4 compressor state out, and its weights price every
  // non-expert parameter at FP8 (§4); so does this run.
  for (const Row51& row : kTable51) {
    PlanRequest r = Request(row.model, row.hw);
    r.expert_dtype = row.expert_dtype;
    r.nominal = row.nominal;
    r.no_compressor_state = true;
    r.dense_weights = "fp8";
    const CapacityPlan p = Plan(r);
    const std::string what = std::string(row.model) + " " + row.expert_dtype + " " + row.hw +
                             (row.nominal ? " nominal" : " usable");
    EXPECT_NEAR(p.kv_budget_bytes / 1e9, row.budget_gb, 0.1) << what;
    ASSERT_EQ(p.lengths.size(), 1u);
    const LengthPlan& l = p.lengths[0];
    EXPECT_EQ(l.tokens, k1M);
    EXPECT_EQ(l.n.per_rank, row.per_gpu) << what;
    EXPECT_DOUBLE_EQ(l.n.per_gpu, static_cast<double>(row.per_gpu)) << what;
    EXPECT_EQ(l.n.per_group, row.per_group) << what;
    ASSERT_TRUE(l.n.per_rack.has_value());
    EXPECT_EQ(*l.n.per_rack, row.per_rack) << what;
  }
}

TEST(PlanCapacity, Section51TableWithinOneWithTheEngineKv) {
  // The default counts the compressor state the engine allocates: at most one request fewer.
  for (const Row51& row : kTable51) {
    PlanRequest r = Request(row.model, row.hw);
    r.expert_dtype = row.expert_dtype;
    r.nominal = row.nominal;
    const int64_t n = Plan(r).lengths[0].n.per_rank;
    EXPECT_LE(n, row.per_gpu) << row.model << " " << row.hw;
    EXPECT_GE(n, row.per_gpu - 1) << row.model << " " << row.hw;
  }
}

TEST(PlanCapacity, OtherLayoutsTableWithinOne) {
  // capacity.md §5.1 "other layouts" (usable HBM); -1 = weights do not fit ("n/f").
  const char* hws[] = {"h100", "h200", "b200", "b300", "gb200", "gb300", "mi300x", "mi355x"};
  struct Row {
    const char* model;
    const char* layout;
    int64_t n[8];
  };
  const Row rows[] = {
      {"v3.2", "dep8", {-1, 0, 1, 2, 1, 2, 1, 2}},
      {"v4-pro", "dep8", {-1, -1, 4, 19, 5, 20, 6, 22}},
      {"v4-flash", "dep8", {9, 24, 34, 55, 35, 58, 37, 60}},
      {"v3.2", "dep16", {0, 1, 1, 3, 1, 3, 2, 3}},
      {"v4-pro", "dep16", {-1, 7, 13, 28, 15, 30, 16, 32}},
      {"v4-flash", "dep16", {12, 27, 36, 58, 38, 61, 39, 63}},
  };
  for (const Row& row : rows) {
    for (int i = 0; i < 8; ++i) {
      const Result<CapacityPlan> p = TryPlan(Request(row.model, hws[i], row.layout));
      const std::string what = std::string(row.model) + " " + row.layout + " " + hws[i];
      if (row.n[i] < 0) {
        ASSERT_FALSE(p.ok()) << what;
        EXPECT_EQ(p.status().code(), StatusCode::kResourceExhausted) << what;
        EXPECT_NE(p.status().message().find("weights do not fit"), std::string::npos);
        continue;
      }
      ASSERT_TRUE(p.ok()) << what << ": " << p.status().ToString();
      EXPECT_NEAR(p->lengths[0].n.per_rank, row.n[i], 1) << what;
    }
  }
}

TEST(PlanCapacity, SeedReproducesExactlyWithItsAssumptions) {
  // 61 x 584 B, no indexer cache, 10^6 tokens, a fixed 176 GB per-GPU KV budget.
  PlanRequest r = Request("v3.2", "gb300");
  r.mla = "584";
  r.indexer = "none";
  r.contexts = {"1e6"};
  r.kv_budget_gb = 176;
  const CapacityPlan p = Plan(r);
  EXPECT_EQ(p.lengths[0].tokens, 1000000);
  EXPECT_EQ(p.lengths[0].kv_bytes, int64_t{61} * 584 * 1000000);
  EXPECT_NEAR(p.lengths[0].kv_bytes / 1e9, 35.6, 0.05);
  EXPECT_EQ(p.lengths[0].n.per_rank, 4);
  EXPECT_TRUE(p.fixed_budget);
  // Any budget of ~142.5-178 GB gives 4 (capacity.md §5 item 2).
  for (auto [budget, n] : {std::pair{142.0, 3}, {143.0, 4}, {178.0, 4}, {179.0, 5}}) {
    r.kv_budget_gb = budget;
    EXPECT_EQ(Plan(r).lengths[0].n.per_rank, n) << budget;
  }
  // "~40" is 4 x 10: 142.4 GB / 3.56 GB; with the same 176 GB budget, V4-Pro's real KV at
  // 10^6 tokens gives 34, not 40 (and 49 at 3.56 GB, §5 item 3).
  PlanRequest v4 = Request("v4-pro", "gb300");
  v4.contexts = {"1e6"};
  v4.kv_budget_gb = 176;
  EXPECT_EQ(Plan(v4).lengths[0].n.per_rank, 34);
  // The defensible numbers: V3.2 3 per GB300 GPU, V4-Pro 30 (§5.1).
  EXPECT_EQ(Plan(Request("v3.2", "gb300")).lengths[0].n.per_rank, 3);
  EXPECT_EQ(Plan(Request("v4-pro", "gb300")).lengths[0].n.per_rank, 30);
}

TEST(PlanCapacity, LmsysCalibration) {
  // capacity.md §6.7: R1-NVFP4 (MLA 576 B, no indexer) at 128K + 8K, DEP8 decode.
  for (auto [hw, util, lo, hi] :
       {std::tuple{"gb300", 0.90, 35, 37}, std::tuple{"gb200", 0.90, 18, 20},
        std::tuple{"gb300", 0.95, 39, 40}, std::tuple{"gb200", 0.95, 20, 22}}) {
    PlanRequest r = Request("v3.2", hw, "dep8");
    r.mla = "576";
    r.indexer = "none";
    r.expert_dtype = "nvfp4";
    r.contexts = {"136K"};
    r.util = util;
    r.no_mtp_weights = true;  // the R1-NVFP4 checkpoint ships without the MTP module
    const CapacityPlan p = Plan(r);
    EXPECT_NEAR(p.weights.total() / 1e9, 66, 1.5);
    EXPECT_GE(p.lengths[0].n.per_rank, lo) << hw << " " << util;
    EXPECT_LE(p.lengths[0].n.per_rank, hi) << hw << " " << util;
  }
}

TEST(PlanCapacity, MaxContextAtConcurrency) {
  PlanRequest r = Request("v4-pro", "gb300");
  r.concurrency = {1, 30, 31, 100000};
  const CapacityPlan p = Plan(r);
  ASSERT_EQ(p.max_context.size(), 4u);
  // One request: the model's 1M limit binds long before memory (~32M tokens).
  EXPECT_EQ(p.max_context[0].max_tokens, k1M);
  EXPECT_GT(p.max_context[0].memory_tokens, 30 * k1M);
  EXPECT_NE(p.max_context[0].binding.find("max_position_embeddings"), std::string::npos);
  // 30 fit at 1M, 31 do not: memory binds just below 1M.
  EXPECT_GE(p.max_context[1].memory_tokens, k1M);
  EXPECT_LT(p.max_context[2].memory_tokens, k1M);
  EXPECT_NE(p.max_context[2].binding.find("KV memory"), std::string::npos);
  for (const MaxContext& m : p.max_context) {
    const double n = static_cast<double>(m.concurrency);
    if (m.memory_tokens == 0) {
      EXPECT_GT(n * KvBytesPerRequest(p.options, 1), p.kv_budget_bytes);
      continue;
    }
    EXPECT_LE(n * KvBytesPerRequest(p.options, m.memory_tokens), p.kv_budget_bytes);
    EXPECT_GT(n * KvBytesPerRequest(p.options, m.memory_tokens + 1), p.kv_budget_bytes);
  }
  // 100,000 requests' fixed window + compressor state alone exceed the budget.
  EXPECT_EQ(p.max_context[3].memory_tokens, 0);
}

TEST(PlanCapacity, ZeroRequestsExplainsTheLongestThatFits) {
  const CapacityPlan p = Plan(Request("v3.2", "h100"));  // 14.2 GB budget < 50.4 GB
  EXPECT_EQ(p.lengths[0].n.per_rank, 0);
  EXPECT_NE(p.lengths[0].binding.find("the longest request that fits alone"), std::string::npos);
  EXPECT_NE(p.summary.find("not even one fits"), std::string::npos);
  // h100 nodes have 8 GPUs: a DEP16 group spans two, so there is no per-rack count.
  EXPECT_FALSE(p.lengths[0].n.per_rack.has_value());
  EXPECT_EQ(p.groups_per_rack, 0);
}

TEST(PlanCapacity, LengthsAndMix) {
  PlanRequest r = Request("v4-flash", "gb300");
  r.contexts = {"8K", "128K", "1M"};
  r.mix = "128K:3,1M:1";
  const CapacityPlan p = Plan(r);
  ASSERT_EQ(p.lengths.size(), 3u);
  for (size_t i = 1; i < p.lengths.size(); ++i) {
    EXPECT_GT(p.lengths[i].kv_bytes, p.lengths[i - 1].kv_bytes);
    EXPECT_LE(p.lengths[i].n.per_rank, p.lengths[i - 1].n.per_rank);
  }
  ASSERT_TRUE(p.mix.has_value());
  EXPECT_DOUBLE_EQ(p.mix->shares[0].weight, 0.75);
  EXPECT_DOUBLE_EQ(p.mix->mean_kv_bytes,
                   0.75 * p.lengths[1].kv_bytes + 0.25 * p.lengths[2].kv_bytes);
  EXPECT_EQ(p.mix->n.per_rank,
            static_cast<int64_t>(std::floor(p.kv_budget_bytes / p.mix->mean_kv_bytes)));
  EXPECT_GT(p.mix->n.per_rank, p.lengths[2].n.per_rank);
  EXPECT_LT(p.mix->n.per_rank, p.lengths[1].n.per_rank);
}

TEST(PlanCapacity, TensorParallelReplicatesKv) {
  const CapacityPlan dep = Plan(Request("v4-flash", "gb300", "dep8"));
  const CapacityPlan tp = Plan(Request("v4-flash", "gb300", "tp8"));
  // Same experts per GPU, non-expert weights split 8 ways, so a larger budget per GPU ...
  EXPECT_DOUBLE_EQ(tp.weights.routed_experts, dep.weights.routed_experts);
  EXPECT_GT(tp.kv_budget_bytes, dep.kv_budget_bytes);
  // ... but every TP rank holds each request's whole KV: 8 GPUs serve one rank's requests.
  EXPECT_EQ(tp.lengths[0].kv_bytes, dep.lengths[0].kv_bytes);
  EXPECT_DOUBLE_EQ(tp.lengths[0].n.per_gpu, tp.lengths[0].n.per_rank / 8.0);
  EXPECT_EQ(tp.lengths[0].n.per_group, tp.lengths[0].n.per_rank);
  EXPECT_LT(tp.lengths[0].n.per_group, dep.lengths[0].n.per_group);
  bool noted = false;
  for (const std::string& n : tp.notes)
    noted |= n.find("TP buys no KV capacity") != std::string::npos;
  EXPECT_TRUE(noted);
  // NVL72 holds nine 8-GPU groups.
  EXPECT_EQ(tp.groups_per_rack, 9);
}

TEST(PlanCapacity, DecodeBandwidthFloor) {
  // capacity.md §6.6: KV read per 1M request per step: V3.2 8.5 GB (the indexer scans every
  // key), V4-Pro 0.71 GB, V4-Flash 0.48 GB.
  const CapacityPlan v32 = Plan(Request("v3.2", "gb300"));
  const CapacityPlan pro = Plan(Request("v4-pro", "gb300"));
  const CapacityPlan flash = Plan(Request("v4-flash", "gb300"));
  auto read = [](const CapacityPlan& p) {
    return KvReadBytesPerStep(p.options.model, p.options.kv_formats, k1M) / 1e9;
  };
  EXPECT_NEAR(read(v32), 8.5, 0.05);
  EXPECT_NEAR(read(pro), 0.71, 0.005);
  EXPECT_NEAR(read(flash), 0.48, 0.005);
  // 30 V4-Pro 1M requests on a GB300: ~21 GB of KV per step, ~2.7 ms at 8 TB/s.
  const DecodeFloor& d = pro.lengths[0].decode;
  EXPECT_EQ(d.batch, 30);
  EXPECT_NEAR(d.kv_read_bytes / 1e9, 21.2, 0.1);
  EXPECT_NEAR(d.kv_read_bytes / 8e12 * 1e3, 2.65, 0.05);
  // 480 decode tokens over 384 experts with top-6 hit essentially all local experts.
  EXPECT_GT(ExpertHitFraction(pro.options.model, 480), 0.999);
  EXPECT_NEAR(ExpertHitFraction(pro.options.model, 1), 6.0 / 384, 1e-12);
  EXPECT_NEAR(d.step_seconds, (d.weight_read_bytes + d.kv_read_bytes) / 8e12, 1e-12);
  EXPECT_NEAR(d.tokens_per_second_per_gpu, 30 / d.step_seconds, 1e-6);
  // Efficiency scales the floor; an unknown bandwidth gives none.
  PlanRequest r = Request("v4-pro", "gb300");
  r.bw_efficiency = 0.5;
  EXPECT_NEAR(Plan(r).lengths[0].decode.step_seconds, 2 * d.step_seconds, 1e-12);
  PlanRequest custom;
  custom.models = {"v4-pro"};
  custom.hbm_gb = 279;
  EXPECT_EQ(Plan(custom).lengths[0].decode.step_seconds, 0);
}

TEST(PlanCapacity, FixedBudgetNotesOverCommit) {
  PlanRequest r = Request("v4-pro", "gb200");
  r.kv_budget_gb = 176;
  const CapacityPlan p = Plan(r);
  bool noted = false;
  for (const std::string& n : p.notes) noted |= n.find("exceed the GPU") != std::string::npos;
  EXPECT_TRUE(noted);  // 80 GB weights + 8 GB + 176 GB > 186 GB
}

}  // namespace
}  // namespace dsv4::plan
