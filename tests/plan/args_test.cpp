// Input parsing and bad inputs: every error names the flag or field, the expected and the
// actual value.
#include "plan/args.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "checkpoint/presets.h"
#include "plan/hardware.h"
#include "plan/parallel.h"

namespace dsv4::plan {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

// No config files in unit tests: path-looking names containing "flash" load V4-Flash.
Result<checkpoint::ModelConfig> FakeLoader(const std::string& path) {
  if (path.find("flash") != std::string::npos) return checkpoint::PresetConfig("v4-flash");
  return Status::NotFound(path + ": no such file or directory");
}

Status ResolveError(const PlanRequest& r) {
  Result<std::vector<PlanOptions>> o = ResolvePlanRequest(r, FakeLoader);
  return o.ok() ? Status::Ok() : o.status();
}

TEST(PlanArgs, Tokens) {
  EXPECT_EQ(ParseTokens("1M").value(), 1048576);
  EXPECT_EQ(ParseTokens("128K").value(), 131072);
  EXPECT_EQ(ParseTokens("1.5M").value(), 1572864);
  EXPECT_EQ(ParseTokens("1e6").value(), 1000000);
  EXPECT_EQ(ParseTokens("1000000").value(), 1000000);
  EXPECT_EQ(ParseTokens("1G").value(), int64_t{1} << 30);
  EXPECT_THAT(ParseTokens("0").status().message(),
              HasSubstr("context length must be >= 1 token, got '0'"));
  EXPECT_THAT(ParseTokens("-5").status().message(), HasSubstr("got '-5'"));
  EXPECT_THAT(ParseTokens("abc").status().message(), HasSubstr("bad context length 'abc'"));
  EXPECT_THAT(ParseTokens("1MB").status().message(), HasSubstr("unknown suffix 'MB'"));
  EXPECT_THAT(ParseTokens("0.5K1").status().message(), HasSubstr("unknown suffix"));
  EXPECT_THAT(ParseTokens("100.5").status().message(), HasSubstr("not a whole number"));
  EXPECT_THAT(ParseTokens("2048G").status().message(), HasSubstr("2^40"));
  EXPECT_FALSE(ParseTokens("").ok());
}

TEST(PlanArgs, Mix) {
  const std::vector<LengthShare> m = ParseMix("8K:0.6,128K:0.3,1M").value();
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[0].tokens, 8192);
  EXPECT_DOUBLE_EQ(m[1].weight, 0.3);
  EXPECT_DOUBLE_EQ(m[2].weight, 1);  // no weight: 1
  EXPECT_THAT(ParseMix("8K:-1").status().message(), HasSubstr("bad mix weight '-1'"));
  EXPECT_THAT(ParseMix("8K:x").status().message(), HasSubstr("bad mix weight 'x'"));
  EXPECT_THAT(ParseMix("0:1").status().message(), HasSubstr("got '0'"));
  EXPECT_FALSE(ParseMix("8K,,1M").ok());
}

TEST(PlanArgs, FormatNamesRoundTrip) {
  for (auto f : {kv::EntryFormat::kFp8, kv::EntryFormat::kBf16}) {
    EXPECT_EQ(ParseEntryFormat(EntryFormatName(f)).value(), f);
  }
  for (auto f : {kv::IndexerFormat::kFp4, kv::IndexerFormat::kFp8, kv::IndexerFormat::kBf16,
                 kv::IndexerFormat::kNone}) {
    EXPECT_EQ(ParseIndexerFormat(IndexerFormatName(f)).value(), f);
  }
  for (auto f : {kv::MlaFormat::kFp8, kv::MlaFormat::kBf16, kv::MlaFormat::kFp8NoScale,
                 kv::MlaFormat::kV4Entry, kv::MlaFormat::kAllFp8NoScale}) {
    EXPECT_EQ(ParseMlaFormat(MlaFormatName(f)).value(), f);
  }
  EXPECT_EQ(ParseMlaFormat("656").value(), kv::MlaFormat::kFp8);
  EXPECT_EQ(ParseIndexerFormat("mxfp4").value(), kv::IndexerFormat::kFp4);
  EXPECT_THAT(ParseMlaFormat("600").status().message(), HasSubstr("unknown MLA format '600'"));
  EXPECT_THAT(ParseIndexerFormat("int4").status().message(), HasSubstr("expected fp4"));
  EXPECT_THAT(ParseEntryFormat("fp4").status().message(), HasSubstr("expected fp8"));
  EXPECT_THAT(ParseExpertDtype("int8").status().message(),
              HasSubstr("expected fp8, mxfp4, nvfp4 or bf16"));
}

TEST(PlanArgs, Layouts) {
  const ParallelLayout dep16 = ParseLayout("dep16").value();
  EXPECT_EQ(dep16.tp, 1);
  EXPECT_EQ(dep16.dp, 16);
  EXPECT_EQ(dep16.ep, 16);
  EXPECT_EQ(dep16.Name(), "dep16");
  const ParallelLayout tp8 = ParseLayout("tp8").value();
  EXPECT_EQ(tp8.gpus(), 8);
  EXPECT_EQ(tp8.ep, 8);
  EXPECT_EQ(tp8.Name(), "tp8");
  const ParallelLayout mixed = ParseLayout("tp2dp8").value();
  EXPECT_EQ(mixed.gpus(), 16);
  EXPECT_EQ(mixed.ep, 16);
  EXPECT_EQ(mixed.Name(), "tp2dp8ep16");
  EXPECT_EQ(ParseLayout("dp16-ep8").value().ep, 8);
  EXPECT_THAT(ParseLayout("dep0").status().message(), HasSubstr("must be >= 1, got 0"));
  EXPECT_THAT(ParseLayout("foo8").status().message(), HasSubstr("unknown part 'foo'"));
  EXPECT_THAT(ParseLayout("dep").status().message(), HasSubstr("needs a degree"));
  EXPECT_THAT(ParseLayout("dep16dp4").status().message(), HasSubstr("dp given twice"));
  EXPECT_THAT(ParseLayout("dp8ep16").status().message(), HasSubstr("ep 16 must divide the 8 GPUs"));
}

TEST(PlanArgs, Hardware) {
  EXPECT_EQ(HardwareNames().size(), 8u);
  const GpuSpec gb200 = ResolveGpu("gb200", false, std::nullopt, std::nullopt).value();
  EXPECT_DOUBLE_EQ(gb200.hbm_bytes, 186e9);
  EXPECT_DOUBLE_EQ(gb200.bw_bytes_per_s, 8e12);
  EXPECT_EQ(gb200.domain_gpus, 72);
  EXPECT_DOUBLE_EQ(ResolveGpu("gb200", true, std::nullopt, std::nullopt)->hbm_bytes, 192e9);
  EXPECT_DOUBLE_EQ(ResolveGpu("gb300", false, std::nullopt, std::nullopt)->hbm_bytes, 279e9);
  EXPECT_DOUBLE_EQ(ResolveGpu("gb300", true, std::nullopt, std::nullopt)->hbm_bytes, 288e9);
  const GpuSpec custom = ResolveGpu("", false, 176.0, 4.0).value();
  EXPECT_EQ(custom.name, "custom");
  EXPECT_DOUBLE_EQ(custom.hbm_bytes, 176e9);
  EXPECT_DOUBLE_EQ(custom.bw_bytes_per_s, 4e12);
  EXPECT_DOUBLE_EQ(ResolveGpu("h200", false, 100.0, std::nullopt)->hbm_bytes, 100e9);
  EXPECT_THAT(
      FindHardware("a100").status().message(),
      AllOf(HasSubstr("unknown hardware preset 'a100'"), HasSubstr("gb300"), HasSubstr("mi355x")));
  EXPECT_THAT(ResolveGpu("", false, std::nullopt, std::nullopt).status().message(),
              HasSubstr("custom GPU needs --hbm"));
  EXPECT_THAT(ResolveGpu("gb300", false, -1.0, std::nullopt).status().message(),
              HasSubstr("--hbm must be a positive number of GB, got -1"));
  EXPECT_THAT(ResolveGpu("gb300", false, std::nullopt, 0.0).status().message(),
              HasSubstr("--bw must be a positive"));
}

TEST(PlanArgs, DefaultsAndCrossProduct) {
  const std::vector<PlanOptions> one = ResolvePlanRequest({}, FakeLoader).value();
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].model_label, "v4-pro");
  EXPECT_EQ(one[0].gpu.name, "gb300");
  EXPECT_EQ(one[0].layout.Name(), "dep16");
  EXPECT_EQ(one[0].lengths, std::vector<int64_t>{1048576});
  EXPECT_EQ(one[0].expert_dtype, ExpertDtype::kMxfp4);
  EXPECT_EQ(one[0].kv_formats.indexer, kv::IndexerFormat::kFp4);
  PlanRequest r;
  r.models = {"v3.2", "./flash/config.json"};
  r.hardware = {"gb200", "gb300", "h200"};
  r.indexer = "bf16";
  const std::vector<PlanOptions> six = ResolvePlanRequest(r, FakeLoader).value();
  ASSERT_EQ(six.size(), 6u);
  EXPECT_EQ(six[0].model_label, "v3.2");
  EXPECT_EQ(six[0].expert_dtype, ExpertDtype::kFp8);
  EXPECT_EQ(six[2].gpu.name, "h200");
  EXPECT_EQ(six[3].model_label, "./flash/config.json");
  EXPECT_EQ(six[3].model.num_hidden_layers, 43);
  EXPECT_EQ(six[5].kv_formats.indexer, kv::IndexerFormat::kBf16);
  // Explicit degrees without --layout: EP defaults to tp x dp.
  PlanRequest t;
  t.tp = 2;
  t.dp = 4;
  EXPECT_EQ(ResolvePlanRequest(t, FakeLoader)->front().layout.Name(), "tp2dp4ep8");
}

TEST(PlanArgs, UnknownPresetsAndFiles) {
  PlanRequest r;
  r.models = {"v5"};
  const Status s = ResolveError(r);
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_THAT(s.message(), AllOf(HasSubstr("unknown model preset 'v5'"), HasSubstr("v4-pro"),
                                 HasSubstr("v3.2"), HasSubstr("config.json")));
  r.models = {"./missing/config.json"};
  EXPECT_THAT(ResolveError(r).message(), HasSubstr("./missing/config.json: no such file"));
  PlanRequest h;
  h.hardware = {"tpu"};
  EXPECT_THAT(ResolveError(h).message(), HasSubstr("unknown hardware preset 'tpu'"));
}

TEST(PlanArgs, EpMustDivideTheExperts) {
  PlanRequest r;
  r.models = {"v4-pro"};
  r.layout = "dep12";  // 384 % 12 == 0: fine
  EXPECT_TRUE(ResolveError(r).ok());
  r.layout = "dep7";
  EXPECT_THAT(ResolveError(r).message(),
              HasSubstr("EP 7 does not divide the 384 routed experts of v4-pro"));
  r.layout = "dep16";
  r.redundant_experts = 8;  // 392 % 16 != 0
  EXPECT_THAT(ResolveError(r).message(), HasSubstr("does not divide the 392 routed experts"));
  PlanRequest e;
  e.tp = 1;
  e.dp = 16;
  e.ep = 32;
  EXPECT_THAT(ResolveError(e).message(), HasSubstr("--ep 32 must divide the 16 GPUs"));
  PlanRequest t;
  t.layout = "tp256";
  EXPECT_THAT(ResolveError(t).message(), HasSubstr("TP 256 does not divide the 128 attention"));
}

TEST(PlanArgs, ConflictingFlags) {
  PlanRequest a;
  a.layout = "dep16";
  a.tp = 2;
  EXPECT_THAT(ResolveError(a).message(),
              AllOf(HasSubstr("conflicting flags"), HasSubstr("--layout dep16")));
  PlanRequest b;
  b.nominal = true;
  b.hbm_gb = 200;
  EXPECT_THAT(ResolveError(b).message(), AllOf(HasSubstr("conflicting flags"),
                                               HasSubstr("--nominal"), HasSubstr("--hbm 200")));
  PlanRequest c;
  c.kv_budget_gb = 176;
  c.util = 0.95;
  EXPECT_THAT(ResolveError(c).message(),
              AllOf(HasSubstr("conflicting flags"), HasSubstr("--kv-budget"), HasSubstr("--util")));
  PlanRequest d;
  d.hbm_gb = 100;
  d.hardware = {"gb200", "gb300"};
  EXPECT_THAT(ResolveError(d).message(), HasSubstr("2 hardware presets were given"));
  PlanRequest e;
  e.models = {"v4-pro"};
  e.mla = "584";
  EXPECT_THAT(ResolveError(e).message(), HasSubstr("--mla 584 sets the V3.2 MLA format but no "
                                                   "V3.2 model was given (v4-pro)"));
  PlanRequest f;
  f.models = {"v3.2"};
  f.entry = "bf16";
  EXPECT_THAT(ResolveError(f).message(), HasSubstr("no V4 model was given (v3.2)"));
}

TEST(PlanArgs, BadNumbers) {
  PlanRequest r;
  r.contexts = {"1M", "0"};
  EXPECT_THAT(ResolveError(r).message(), HasSubstr("must be >= 1 token, got '0'"));
  // Options built by hand are validated by PlanCapacity too.
  PlanOptions o = ResolvePlanRequest({}, FakeLoader)->front();
  auto error = [](const PlanOptions& x) { return PlanCapacity(x).status().message(); };
  PlanOptions bad = o;
  bad.lengths = {-3};
  EXPECT_THAT(error(bad), HasSubstr("v4-pro: context length must be >= 1 token, got -3"));
  bad = o;
  bad.memory.util = 1.5;
  EXPECT_THAT(error(bad), HasSubstr("memory utilisation must be in (0, 1], got 1.500"));
  bad = o;
  bad.memory.workspace_gb = -1;
  EXPECT_THAT(error(bad), HasSubstr("workspace reserve must be >= 0 GB, got -1.000"));
  bad = o;
  bad.memory.kv_budget_gb = 0;
  EXPECT_THAT(error(bad), HasSubstr("KV budget must be > 0 GB"));
  bad = o;
  bad.concurrency = {0};
  EXPECT_THAT(error(bad), HasSubstr("concurrency must be >= 1 request, got 0"));
  bad = o;
  bad.mix = {{8192, 0}};
  EXPECT_THAT(error(bad), HasSubstr("mix weight of 8,192 tokens must be > 0"));
  bad = o;
  bad.bw_efficiency = 0;
  EXPECT_THAT(error(bad), HasSubstr("bandwidth efficiency must be in (0, 1]"));
  bad = o;
  bad.lengths.clear();
  EXPECT_THAT(error(bad), HasSubstr("no context length given"));
}

TEST(PlanArgs, WeightsThatDoNotFit) {
  PlanRequest r;
  r.models = {"v4-pro"};
  r.hardware = {"h100"};
  r.layout = "dep8";
  Result<CapacityPlan> p = PlanCapacity(ResolvePlanRequest(r, FakeLoader)->front());
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kResourceExhausted);
  EXPECT_THAT(p.status().message(),
              AllOf(HasSubstr("weights do not fit: v4-pro under dep8 with mxfp4 experts needs "
                              "133.62 GB"),
                    HasSubstr("8.00 GB workspace"), HasSubstr("offers 72.00 GB"),
                    HasSubstr("h100 (80 GB)")));
}

}  // namespace
}  // namespace dsv4::plan
