// bench kv: what the engine's caches hold, read back through their own accessors, equals the
// byte formulas of kv/layout.h (entries) and kv/page_layout.h (pages), for tiny and real
// presets, whole stacks and layer subsets; at 1M the V4/V3.2 ratios are the spec's.
#include "bench/kv_measure.h"

#include <gtest/gtest.h>

#include "bench/layer_subset.h"
#include "kv/layout.h"
#include "kv/page_layout.h"
#include "checkpoint/presets.h"

namespace dsv4::bench {
namespace {

checkpoint::ModelConfig Preset(const char* name) { return checkpoint::PresetConfig(name).value(); }

// Every component of the measured point equals the formula's, by name, and nothing else
// holds bytes; V4 pages equal PageLayout::BytesAt.
void ExpectMatchesFormulas(const checkpoint::ModelConfig& c, const KvReport& r) {
  const kv::KvFormats f = kv::DefaultKvFormats(c.arch);
  const kv::PageLayout pl(c, f);
  for (const KvPoint& p : r.points) {
    SCOPED_TRACE(r.label + " at " + std::to_string(p.num_tokens) + " tokens");
    const kv::KvFootprint fp = kv::ComputeKvFootprint(c, f, p.num_tokens);
    int64_t nonzero = 0;
    for (const kv::KvComponent& want : fp.components) {
      if (want.bytes() == 0) continue;
      ++nonzero;
      const MeasuredComponent* got = nullptr;
      for (const auto& m : p.components) {
        if (m.name == want.name) got = &m;
      }
      ASSERT_NE(got, nullptr) << want.name;
      EXPECT_EQ(got->exact_bytes, want.bytes()) << want.name;
      EXPECT_EQ(got->layers, want.layers) << want.name;
      EXPECT_EQ(got->entries, want.entries_per_layer) << want.name;
      EXPECT_EQ(got->entry_bytes, want.bytes_per_entry) << want.name;
      EXPECT_EQ(got->fixed, want.fixed) << want.name;
      EXPECT_GE(got->page_bytes, got->exact_bytes) << want.name;
    }
    int64_t measured_nonzero = 0;
    for (const auto& m : p.components) measured_nonzero += m.exact_bytes > 0;
    EXPECT_EQ(measured_nonzero, nonzero);
    EXPECT_EQ(p.exact_bytes(), fp.total_bytes());
    EXPECT_EQ(p.growing_bytes(), fp.growing_bytes());
    // Both caches are paged (V3.2 since it moved onto the KV manager): what they hold is
    // the layout's page math, charged exactly to their manager; V3.2 pages are full at
    // multiples of 64 tokens, so there they hold exactly the byte formula.
    EXPECT_EQ(p.page_bytes(), pl.BytesAt(p.num_tokens));
    EXPECT_EQ(p.subset_usage_bytes, p.subset_manager_bytes);
    if (c.arch == checkpoint::Arch::kV32 && p.num_tokens % 64 == 0) {
      EXPECT_EQ(p.page_bytes(), p.exact_bytes());
    }
  }
}

TEST(BenchKv, TinyPresetsMatchFormulasWholeStackAndSubset) {
  const std::vector<int64_t> lengths = {1, 3, 4, 5, 31, 32, 33, 64, 127, 128, 129, 200, 1000, 4099};
  for (const char* name : {"v4-tiny", "v3.2-tiny"}) {
    const checkpoint::ModelConfig c = Preset(name);
    for (int64_t layers : {int64_t{0}, int64_t{100}}) {
      SCOPED_TRACE(std::string(name) + " layers " + std::to_string(layers));
      Result<KvReport> r = MeasureKv(c, name, {.lengths = lengths, .num_layers = layers});
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      ASSERT_EQ(r->points.size(), lengths.size());
      EXPECT_EQ(r->subset.scaled(), layers == 0);
      ExpectMatchesFormulas(c, *r);
    }
  }
}

TEST(BenchKv, RealPresetsMatchFormulasOnLayerSubsets) {
  // Unsorted, repeated and non-aligned lengths: the cache grows through them in order.
  const std::vector<int64_t> lengths = {8192 + 77, 1000, 129, 8192 + 77};
  for (const char* name : {"v4-flash", "v4-pro", "v3.2"}) {
    const checkpoint::ModelConfig c = Preset(name);
    for (int64_t layers : {int64_t{0}, int64_t{5}}) {
      SCOPED_TRACE(std::string(name) + " layers " + std::to_string(layers));
      Result<KvReport> r = MeasureKv(c, name, {.lengths = lengths, .num_layers = layers});
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      EXPECT_TRUE(r->subset.scaled());
      ASSERT_EQ(r->points.size(), lengths.size());
      EXPECT_EQ(r->points[0].num_tokens, 8192 + 77);
      ExpectMatchesFormulas(c, *r);
    }
  }
}

// Spec §13.2 / capacity.md §3.2 at n = 2^20: the growing terms to the byte, the fixed terms
// (window rings, compressor state) as printed there, and Pro ≈ 10.5 %, Flash ≈ 7.3 %.
TEST(BenchKv, OneMillionTokensReproducesTheSpecRatios) {
  const int64_t n = int64_t{1} << 20;
  auto measure = [&](const char* name) {
    Result<KvReport> r = MeasureKv(Preset(name), name, {.lengths = {n}});
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    ExpectMatchesFormulas(Preset(name), *r);
    return r->points.front();
  };
  const KvPoint v32 = measure("v3.2"), pro = measure("v4-pro"), flash = measure("v4-flash");
  EXPECT_EQ(v32.exact_bytes(), int64_t{48068} * n);  // 61 x (656 + 132) B per token
  EXPECT_EQ(pro.growing_bytes(), 30 * (584 + 68) * (n / 4) + 31 * 584 * (n / 128));
  EXPECT_EQ(pro.growing_bytes(), 5'275'844'608);
  EXPECT_EQ(flash.growing_bytes(), 3'684'958'208);
  EXPECT_EQ(pro.window_bytes(), 61 * 128 * 584);                // 4.35 MiB
  EXPECT_EQ(flash.window_bytes(), 43 * 128 * 584);              // 3.07 MiB
  EXPECT_EQ(pro.state_bytes(), (30 * 80 + 31 * 512) * 1024);    // 17.84 MiB
  EXPECT_EQ(flash.state_bytes(), (21 * 80 + 20 * 512) * 1024);  // 11.64 MiB
  const double base = static_cast<double>(v32.exact_bytes());
  for (const auto& [p, want] : {std::pair{pro, 0.105}, std::pair{flash, 0.073}}) {
    EXPECT_NEAR(static_cast<double>(p.growing_bytes() + p.window_bytes()) / base, want, 0.001);
    EXPECT_NEAR(static_cast<double>(p.exact_bytes()) / base, want, 0.001);
  }
}

TEST(BenchKv, LayerSubsetsKeepTheMix) {
  Result<LayerSubset> s = SelectLayers(Preset("v4-flash"), 0);
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(s->groups.size(), 3u);
  EXPECT_EQ(s->config.num_hidden_layers, 3);
  EXPECT_EQ(s->groups[0].name, "SWA");
  EXPECT_EQ(s->groups[0].full_count, 2);
  EXPECT_EQ(s->groups[1].full_count, 21);
  EXPECT_EQ(s->groups[2].full_count, 20);
  EXPECT_EQ(s->Describe(43), "3 layers (1 SWA, 1 CSA, 1 HCA) of 43 (2 SWA + 21 CSA + 20 HCA)");
  EXPECT_TRUE(s->scaled());
  s = SelectLayers(Preset("v4-pro"), 7);  // 30 CSA + 31 HCA: 3 + 4 (31/4 > 30/3)
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->groups[0].subset_layers.size(), 3u);
  EXPECT_EQ(s->groups[1].subset_layers.size(), 4u);
  for (int64_t l : s->groups[1].subset_layers) EXPECT_EQ(s->config.ratio(l), 128);
  s = SelectLayers(Preset("v4-flash"), 43);
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(s->scaled());
  EXPECT_EQ(s->config.compress_ratios, Preset("v4-flash").compress_ratios);
  s = SelectLayers(Preset("v3.2"), 0);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->config.num_hidden_layers, 1);
  EXPECT_EQ(s->groups[0].full_count, 61);
  Result<LayerSubset> bad = SelectLayers(Preset("v4-flash"), 2);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("cannot keep the 3 layer types"), std::string::npos);
}

TEST(BenchKv, RejectsBadRequests) {
  EXPECT_FALSE(MeasureKv(Preset("v4-tiny"), "t", {.lengths = {}}).ok());
  EXPECT_FALSE(MeasureKv(Preset("v4-tiny"), "t", {.lengths = {0}}).ok());
  Result<KvReport> big =
      MeasureKv(Preset("v3.2"), "v3.2", {.lengths = {int64_t{1} << 20}, .max_bytes = 1 << 20});
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.status().code(), StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace dsv4::bench
