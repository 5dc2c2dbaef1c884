// bench/depth.h: llama-bench's test expansion, names, statistics and output shapes.
#include "bench/depth.h"

#include <gtest/gtest.h>

namespace dsv4::bench {
namespace {

TEST(DepthTest, ExpandsLikeLlamaBench) {
  const std::vector<DepthTest> t = ExpandDepthTests({512}, {128}, {0, 4096}, {2});
  ASSERT_EQ(t.size(), 4u);
  EXPECT_EQ(DepthTestName(t[0]), "pp512");
  EXPECT_EQ(DepthTestName(t[1]), "tg128");
  EXPECT_EQ(DepthTestName(t[2]), "pp512 @ d4096");
  EXPECT_EQ(DepthTestName(t[3]), "tg128 @ d4096");
  EXPECT_EQ(t[3].threads, 2);
  EXPECT_EQ(DepthTestTokens(t[2]), 512);
  EXPECT_EQ(DepthTestTokens(t[3]), 128);
  // -n 0 / -p 0 drop the test kind; thread counts are the outer loop.
  EXPECT_EQ(ExpandDepthTests({512}, {0}, {0, 128}, {1, 2}).size(), 4u);
  EXPECT_TRUE(ExpandDepthTests({0}, {0}, {0}, {1}).empty());
}

TEST(DepthTest, MeanAndSampleStddev) {
  const MeanStd a = MeanAndStddev({2.0, 4.0, 6.0});
  EXPECT_DOUBLE_EQ(a.mean, 4.0);
  EXPECT_DOUBLE_EQ(a.stddev, 2.0);
  const MeanStd one = MeanAndStddev({3.0});
  EXPECT_DOUBLE_EQ(one.mean, 3.0);
  EXPECT_DOUBLE_EQ(one.stddev, 0.0);
  EXPECT_DOUBLE_EQ(MeanAndStddev({}).mean, 0.0);
}

TEST(DepthTest, SizeAndParamsCells) {
  EXPECT_EQ(DepthSizeCell(8972604), "8.56 MiB");
  EXPECT_EQ(DepthSizeCell(int64_t{3} << 30), "3.00 GiB");
  EXPECT_EQ(DepthParamsCell(8390000), "8.39 M");
  EXPECT_EQ(DepthParamsCell(6740000000), "6.74 B");
}

TEST(DepthTest, MarkdownHasLlamaBenchColumnsAndRates) {
  const DepthModel m{.filename = "dir", .type = "deepseek_v4 5L FP8", .size_bytes = 1 << 20,
                     .n_params = 2000000};
  // 512 tokens in 0.5 s and 0.25 s: 1024 and 2048 tokens/s.
  const std::vector<DepthResult> r = {
      {.test = {.n_prompt = 512, .n_gen = 0, .n_depth = 4096, .threads = 2}, .seconds = {0.5, 0.25}}};
  const std::string md = DepthMarkdown(m, r);
  EXPECT_NE(md.find("| model"), std::string::npos);
  for (const char* col : {"size", "params", "backend", "threads", "test", "t/s"}) {
    EXPECT_NE(md.find(col), std::string::npos) << col;
  }
  EXPECT_NE(md.find("pp512 @ d4096"), std::string::npos);
  EXPECT_NE(md.find("1536.00 ± 724.08"), std::string::npos) << md;
  EXPECT_NE(md.find("1.00 MiB"), std::string::npos);
  EXPECT_NE(md.find("| CPU "), std::string::npos);
  // Header, separator (right-aligned numeric columns end in ':'), one row; all rows as wide.
  const size_t l1 = md.find('\n'), l2 = md.find('\n', l1 + 1);
  EXPECT_NE(md.substr(l1 + 1, l2 - l1 - 1).find(":"), std::string::npos);

  const nlohmann::json j = DepthJson(m, 2048, r);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["n_prompt"], 512);
  EXPECT_EQ(j[0]["n_gen"], 0);
  EXPECT_EQ(j[0]["n_depth"], 4096);
  EXPECT_EQ(j[0]["n_threads"], 2);
  EXPECT_EQ(j[0]["n_batch"], 2048);
  EXPECT_EQ(j[0]["avg_ns"], 375000000);
  EXPECT_DOUBLE_EQ(j[0]["avg_ts"].get<double>(), 1536.0);
  EXPECT_EQ(j[0]["samples_ns"].size(), 2u);
  EXPECT_EQ(j[0]["model_size"], 1 << 20);
}

}  // namespace
}  // namespace dsv4::bench
