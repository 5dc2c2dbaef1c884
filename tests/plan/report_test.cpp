// JSON, CSV and SVG renderings of planner results.
#include "plan/report.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "plan/args.h"
#include "plan/svg.h"

namespace dsv4::plan {
namespace {

using ::testing::HasSubstr;

std::vector<PlanCase> Cases(PlanRequest r) {
  return PlanAll(ResolvePlanRequest(r, nullptr).value());
}

size_t Count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t i = s.find(what); i != std::string::npos; i = s.find(what, i + 1)) ++n;
  return n;
}

TEST(PlanReport, JsonHasEveryOutput) {
  PlanRequest r;
  r.models = {"v4-pro"};
  r.hardware = {"gb300", "h100"};
  r.layout = "dep8";  // V4-Pro does not fit on H100 under DEP8
  r.contexts = {"128K", "1M"};
  r.mix = "128K:1,1M:1";
  r.concurrency = {1, 16};
  const nlohmann::json j = PlansJson(Cases(r));
  ASSERT_EQ(j["plans"].size(), 1u);
  ASSERT_EQ(j["errors"].size(), 1u);
  EXPECT_THAT(j["errors"][0]["error"].get<std::string>(), HasSubstr("weights do not fit"));
  EXPECT_EQ(j["errors"][0]["layout"], "dep8");
  const nlohmann::json& p = j["plans"][0];
  EXPECT_EQ(p["model"], "v4-pro");
  EXPECT_EQ(p["layout"]["ep"], 8);
  EXPECT_EQ(p["expert_dtype"], "mxfp4");
  EXPECT_EQ(p["kv_formats"]["indexer"], "fp4");
  // The non-expert tensors at their stored bytes (capacity.md §4's all-FP8 basis: 132.3).
  EXPECT_NEAR(p["weights_per_gpu"]["total_gb"].get<double>(), 133.62, 0.005);
  EXPECT_EQ(p["weights_per_gpu"]["dense_basis"], "stored");
  EXPECT_NEAR(p["kv"]["bytes_per_token"].get<double>(), 5031.4375, 1e-9);
  EXPECT_EQ(p["kv"]["components"].size(), 6u);
  ASSERT_EQ(p["lengths"].size(), 2u);
  const nlohmann::json& l = p["lengths"][1];
  EXPECT_EQ(l["tokens"], 1048576);
  EXPECT_TRUE(l["components"].contains("csa_indexer_keys"));
  EXPECT_GT(l["requests_per_dp_rank"].get<int64_t>(), 0);
  EXPECT_EQ(l["requests_per_rack"].get<int64_t>(), l["requests_per_group"].get<int64_t>() * 9);
  EXPECT_GT(l["decode"]["step_ms"].get<double>(), 0);
  EXPECT_TRUE(p.contains("mix"));
  EXPECT_EQ(p["max_context"].size(), 2u);
  EXPECT_FALSE(p["summary"].get<std::string>().empty());
}

TEST(PlanReport, CsvRowsAndQuoting) {
  PlanRequest r;
  r.models = {"v3.2", "v4-flash"};
  r.hardware = {"h100"};
  r.layout = "dep8";  // V3.2 does not fit; Flash does
  r.contexts = {"8K", "1M"};
  const std::string csv = PlansCsv(Cases(r));
  EXPECT_EQ(Count(csv, "\n"), 1u + 1u + 2u);  // header, V3.2 error, two Flash lengths
  EXPECT_EQ(csv.rfind("model,hardware,hbm_gb,layout,", 0), 0u);
  EXPECT_THAT(csv, HasSubstr("v3.2,h100,80.0,dep8,8,fp8,"));
  EXPECT_THAT(csv, HasSubstr("\"weights do not fit"));
  EXPECT_THAT(csv, HasSubstr("v4-flash,h100,80.0,dep8,8,mxfp4,fp8 entries (584 B) + fp4 "));
  EXPECT_THAT(csv, HasSubstr(",KV memory: 9 x 3.70 GB = 33.30 GB of"));
  // Every line has the header's 18 columns once quoted fields are skipped.
  size_t start = 0;
  while (start < csv.size()) {
    const size_t end = csv.find('\n', start);
    const std::string line = csv.substr(start, end - start);
    int cols = 1;
    bool quoted = false;
    for (char c : line) {
      if (c == '"') quoted = !quoted;
      if (c == ',' && !quoted) ++cols;
    }
    EXPECT_EQ(cols, 18) << line;
    start = end + 1;
  }
}

TEST(PlanReport, SvgIsALabelledLogLogPlot) {
  PlanRequest r;
  r.models = {"v3.2", "v4-pro", "v4-flash"};
  r.hardware = {"gb200", "gb300"};
  r.contexts = {"128K", "1M"};
  const std::vector<PlanCase> cases = Cases(r);
  const std::string svg = RenderSvg(cases);
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_THAT(svg, HasSubstr("<svg xmlns=\"http://www.w3.org/2000/svg\""));
  EXPECT_EQ(svg.substr(svg.size() - 7), "</svg>\n");
  EXPECT_THAT(svg, HasSubstr("context length per request (tokens, log scale"));
  EXPECT_THAT(svg, HasSubstr("max concurrent requests per GPU (log scale)"));
  EXPECT_THAT(svg, HasSubstr(">1M</text>"));
  EXPECT_THAT(svg, HasSubstr(">4K</text>"));
  EXPECT_THAT(svg, HasSubstr("v4-flash | gb300 (279 GB usable) | dep16 | mxfp4"));
  EXPECT_EQ(Count(svg, "<path "), 6u);     // one line per case
  EXPECT_EQ(Count(svg, "<circle "), 12u);  // a marker per planned length
  EXPECT_EQ(Count(svg, "<text"), Count(svg, "</text>"));
  // Markers sit at the planned values: V4-Pro on GB300 at 1M shows 30.
  EXPECT_THAT(svg, HasSubstr(">30</text>"));
}

TEST(PlanReport, SvgCurveAndEscaping) {
  PlanRequest r;
  r.models = {"v4-pro"};
  r.hardware = {"gb300"};
  const std::vector<PlanCase> cases = Cases(r);
  const std::vector<int64_t> xs = CurveTokens(cases, {});
  EXPECT_EQ(xs.front(), 4096);
  EXPECT_EQ(xs.back(), 1048576);
  EXPECT_EQ(xs.size(), 8u * 4 + 1);  // 8 octaves, 4 points each, both ends
  const std::vector<SvgPoint> curve = ConcurrencyCurve(*cases[0].plan, xs);
  EXPECT_TRUE(std::is_sorted(curve.begin(), curve.end(), [](const SvgPoint& a, const SvgPoint& b) {
    return a.requests_per_gpu > b.requests_per_gpu;
  }));
  EXPECT_EQ(curve.back().requests_per_gpu, 30);
  std::vector<PlanCase> odd = cases;
  odd[0].options.model_label = "a&b<c>";
  EXPECT_THAT(RenderSvg(odd), HasSubstr("a&amp;b&lt;c&gt;"));
  // A failed case is in the legend, without a line; no case at all is still a valid plot.
  odd[0].plan.reset();
  const std::string failed = RenderSvg(odd);
  EXPECT_THAT(failed, HasSubstr("weights do not fit"));
  EXPECT_EQ(Count(failed, "<path "), 0u);
  EXPECT_THAT(RenderSvg({}), HasSubstr("</svg>"));
}

}  // namespace
}  // namespace dsv4::plan
