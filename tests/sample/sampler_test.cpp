// The sampler and speculative verification: VerifyDrafts emits exactly the tokens plain
// sampling draws (draw for draw), and, checked statistically against the exact
// distributions, is the standard rejection sampling with a one-hot drafter: a draft d is
// accepted with probability p(d), a rejection is drawn from p without d, and whole generated
// sequences follow the target's distribution whatever the drafts.
#include "sample/sampler.h"

#include <array>
#include <cmath>
#include <map>
#include <vector>

#include <gtest/gtest.h>

#include "core/rng.h"

namespace dsv4::sample {
namespace {

// Exact probabilities of the sampled distribution over `vocab` tokens (0 outside it).
std::vector<double> Exact(std::span<const float> logits, const SamplingParams& p) {
  SampleScratch s;
  const double kept = Candidates(logits, p, &s);
  std::vector<double> out(logits.size(), 0.0);
  for (size_t i = 0; i < s.ids.size(); ++i) out[static_cast<size_t>(s.ids[i])] = s.prob[i] / kept;
  return out;
}

// Pearson's statistic of `counts` against `probs` (cells with probability 0 must be empty);
// returns the degrees of freedom in *df.
double ChiSquare(const std::vector<int64_t>& counts, const std::vector<double>& probs, int* df) {
  int64_t n = 0;
  for (int64_t c : counts) n += c;
  double chi = 0;
  *df = -1;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (probs[i] == 0) {
      EXPECT_EQ(counts[i], 0) << "token " << i << " has probability 0";
      continue;
    }
    const double e = probs[i] * static_cast<double>(n);
    chi += (static_cast<double>(counts[i]) - e) * (static_cast<double>(counts[i]) - e) / e;
    ++*df;
  }
  return chi;
}

// Upper 0.1% points of the chi-square distribution (Wilson-Hilferty for larger df): a
// correct sampler fails one check in a thousand seeds; the seeds here are fixed.
double Critical(int df) {
  static const std::map<int, double> table = {{1, 10.83}, {2, 13.82}, {3, 16.27}, {4, 18.47},
                                              {5, 20.52}, {6, 22.46}, {7, 24.32}};
  if (auto it = table.find(df); it != table.end()) return it->second;
  const double z = 3.0902, k = df;
  return k * std::pow(1 - 2 / (9 * k) + z * std::sqrt(2 / (9 * k)), 3);
}

const std::vector<float> kRow0 = {1.5f, 0.2f, 2.0f, -1.0f, 0.9f, 1.1f};
const std::vector<float> kRow1 = {0.3f, 1.7f, -0.5f, 1.2f, 0.0f, 0.8f};

TEST(VerifyDrafts, GreedyAcceptsTheLongestArgmaxPrefixPlusOne) {
  std::vector<float> rows = kRow0;  // argmax 2
  rows.insert(rows.end(), kRow1.begin(), kRow1.end());  // argmax 1
  rows.insert(rows.end(), kRow0.begin(), kRow0.end());  // argmax 2
  const SamplingParams greedy;
  SampleScratch scratch;
  std::vector<int32_t> out;
  EXPECT_EQ(VerifyDrafts(rows, std::vector<int32_t>{2, 1}, greedy, 9, &scratch, &out), 2);
  EXPECT_EQ(out, std::vector<int32_t>({2, 1, 2}));  // both drafts and the bonus
  EXPECT_EQ(VerifyDrafts(rows, std::vector<int32_t>{2, 4}, greedy, 9, &scratch, &out), 1);
  EXPECT_EQ(out, std::vector<int32_t>({2, 1}));  // the correction replaces the 2nd draft
  EXPECT_EQ(VerifyDrafts(rows, std::vector<int32_t>{0, 1}, greedy, 9, &scratch, &out), 0);
  EXPECT_EQ(out, std::vector<int32_t>({2}));
  EXPECT_EQ(VerifyDrafts(std::span<const float>(rows).first(6), {}, greedy, 9, &scratch, &out), 0);
  EXPECT_EQ(out, std::vector<int32_t>({2}));  // no drafts: a plain step
}

// Whatever the drafts, the tokens emitted are SampleToken's at their positions.
TEST(VerifyDrafts, EmitsThePlainSamplersTokens) {
  Rng rng(3);
  SampleScratch scratch;
  std::vector<int32_t> out;
  for (int trial = 0; trial < 500; ++trial) {
    const SamplingParams p{.temperature = 0.7f, .top_k = 4, .top_p = 0.9f, .seed = rng.NextU64()};
    const int64_t k = static_cast<int64_t>(rng.Below(4));
    std::vector<float> rows;
    for (int64_t i = 0; i <= k; ++i) {
      for (int t = 0; t < 6; ++t) rows.push_back(static_cast<float>(rng.Normal()));
    }
    std::vector<int32_t> drafts;
    for (int64_t i = 0; i < k; ++i) {
      // Mostly the plain token (to reach later rows), sometimes another.
      const int32_t plain = SampleToken(std::span<const float>(rows).subspan(i * 6, 6), p, 40 + i);
      drafts.push_back(rng.Below(4) == 0 ? static_cast<int32_t>(rng.Below(6)) : plain);
    }
    const int64_t j = VerifyDrafts(rows, drafts, p, 40, &scratch, &out);
    ASSERT_EQ(static_cast<int64_t>(out.size()), j + 1);
    for (int64_t i = 0; i <= j; ++i) {
      EXPECT_EQ(out[i], SampleToken(std::span<const float>(rows).subspan(i * 6, 6), p, 40 + i));
      if (i < j) EXPECT_EQ(out[i], drafts[i]);
    }
    if (j < k) EXPECT_NE(out[j], drafts[j]);
  }
}

// Over many seeds: a draft d is accepted with probability p(d) (min(1, p/q) with q one-hot),
// a rejection is distributed as norm(max(p - q, 0)) (p without d), and after an acceptance
// the bonus token follows the next row's distribution.
TEST(VerifyDrafts, IsRejectionSamplingWithAOneHotDrafter) {
  const SamplingParams base{.temperature = 0.9f, .top_k = 5, .top_p = 0.97f, .seed = 0};
  const std::vector<double> p0 = Exact(kRow0, base), p1 = Exact(kRow1, base);
  std::vector<float> rows = kRow0;
  rows.insert(rows.end(), kRow1.begin(), kRow1.end());
  SampleScratch scratch;
  std::vector<int32_t> out;
  for (int32_t d : {2, 5, 4}) {  // the likeliest token, a middle one, a rare one
    SCOPED_TRACE(d);
    std::vector<int64_t> accept(2, 0), rejected(6, 0), bonus(6, 0);
    const int trials = 30000;
    for (int s = 0; s < trials; ++s) {
      SamplingParams p = base;
      p.seed = 1000003ull * static_cast<uint64_t>(s) + static_cast<uint64_t>(d);
      const int64_t j = VerifyDrafts(rows, std::vector<int32_t>{d}, p, 17, &scratch, &out);
      ++accept[static_cast<size_t>(j)];
      if (j == 0) ++rejected[static_cast<size_t>(out[0])];
      if (j == 1) ++bonus[static_cast<size_t>(out[1])];
    }
    int df = 0;
    const double pd = p0[static_cast<size_t>(d)];
    double chi = ChiSquare({accept[1], accept[0]}, {pd, 1 - pd}, &df);
    EXPECT_LT(chi, Critical(df)) << "acceptance " << accept[1] << "/" << trials << " vs " << pd;
    std::vector<double> residual = p0;
    residual[static_cast<size_t>(d)] = 0;
    for (double& r : residual) r /= 1 - pd;
    chi = ChiSquare(rejected, residual, &df);
    EXPECT_LT(chi, Critical(df)) << "rejections";
    chi = ChiSquare(bonus, p1, &df);
    EXPECT_LT(chi, Critical(df)) << "bonus";
  }
}

// A tiny "model": the next token's logits depend on the previous token (vocabulary 4).
std::array<float, 4> NextLogits(int32_t prev) {
  static const float t[4][4] = {
      {1.0f, 0.1f, -0.4f, 0.6f}, {0.2f, 1.3f, 0.0f, -0.7f},
      {-0.3f, 0.5f, 0.9f, 0.4f}, {0.8f, -0.2f, 0.3f, 0.1f}};
  return {t[prev][0], t[prev][1], t[prev][2], t[prev][3]};
}

// Whole sequences generated speculatively with random drafts (a drafter that knows nothing)
// follow the target's distribution: chi-square over the 64 sequences of 3 tokens against
// their exact probabilities.
TEST(VerifyDrafts, SpeculativeSequencesFollowTheTargetDistribution) {
  const SamplingParams base{.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .seed = 0};
  std::vector<double> exact(64, 1.0);
  for (int seq = 0; seq < 64; ++seq) {
    int32_t prev = 0;
    for (int i = 0; i < 3; ++i) {
      const int32_t t = (seq >> (2 * (2 - i))) & 3;
      const std::array<float, 4> l = NextLogits(prev);
      exact[static_cast<size_t>(seq)] *= Exact(l, base)[static_cast<size_t>(t)];
      prev = t;
    }
  }
  Rng drafter(11);
  SampleScratch scratch;
  std::vector<int32_t> out;
  std::vector<int64_t> counts(64, 0);
  for (int s = 0; s < 40000; ++s) {
    SamplingParams p = base;
    p.seed = 7919ull * static_cast<uint64_t>(s) + 1;
    std::vector<int32_t> tokens = {0};  // the prompt
    while (tokens.size() < 4) {
      const int64_t k = static_cast<int64_t>(drafter.Below(3));
      std::vector<int32_t> drafts;
      for (int64_t i = 0; i < k; ++i) drafts.push_back(static_cast<int32_t>(drafter.Below(4)));
      // The target's rows for [last, drafts...]: row i conditions on the token before it.
      std::vector<float> rows;
      int32_t prev = tokens.back();
      for (int64_t i = 0; i <= k; ++i) {
        const std::array<float, 4> l = NextLogits(prev);
        rows.insert(rows.end(), l.begin(), l.end());
        if (i < k) prev = drafts[static_cast<size_t>(i)];
      }
      VerifyDrafts(rows, drafts, p, static_cast<int64_t>(tokens.size()), &scratch, &out);
      for (int32_t t : out) {
        if (tokens.size() < 4) tokens.push_back(t);
      }
    }
    ++counts[static_cast<size_t>(tokens[1] * 16 + tokens[2] * 4 + tokens[3])];
  }
  int df = 0;
  const double chi = ChiSquare(counts, exact, &df);
  EXPECT_EQ(df, 63);
  EXPECT_LT(chi, Critical(df));
}

}  // namespace
}  // namespace dsv4::sample
