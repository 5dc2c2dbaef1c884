#include "sample/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/check.h"
#include "core/rng.h"

namespace dsv4::sample {

int32_t SampleToken(std::span<const float> logits, const SamplingParams& p, int64_t position) {
  SampleScratch scratch;
  return SampleToken(logits, p, position, &scratch);
}

double Candidates(std::span<const float> logits, const SamplingParams& p, SampleScratch* scratch) {
  const int64_t vocab = static_cast<int64_t>(logits.size());
  // Candidates by descending logit (ties to the lower id), cut by top-k.
  std::vector<int32_t>& ids = scratch->ids;
  ids.resize(static_cast<size_t>(vocab));
  std::iota(ids.begin(), ids.end(), 0);
  const int64_t k = p.top_k > 0 ? std::min(p.top_k, vocab) : vocab;
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  ids.resize(static_cast<size_t>(k));
  std::vector<double>& prob = scratch->prob;
  prob.resize(ids.size());
  const double mx = logits[ids[0]];
  double sum = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    prob[i] = std::exp((logits[ids[i]] - mx) / p.temperature);
    sum += prob[i];
  }
  // Top-p: the smallest prefix whose mass reaches top_p.
  size_t keep = ids.size();
  if (p.top_p < 1.0f) {
    double mass = 0;
    for (size_t i = 0; i < ids.size(); ++i) {
      mass += prob[i] / sum;
      if (mass >= p.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  ids.resize(keep);
  prob.resize(keep);
  double kept = 0;
  for (size_t i = 0; i < keep; ++i) kept += prob[i];
  return kept;
}

int32_t SampleToken(std::span<const float> logits, const SamplingParams& p, int64_t position,
                    SampleScratch* scratch) {
  if (p.temperature <= 0.0f) {
    return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  }
  const double kept = Candidates(logits, p, scratch);
  const std::vector<int32_t>& ids = scratch->ids;
  const std::vector<double>& prob = scratch->prob;
  Rng rng(p.seed ^ (0x9e3779b97f4a7c15ull * static_cast<uint64_t>(position + 1)));
  double r = rng.Uniform() * kept;
  for (size_t i = 0; i < ids.size(); ++i) {
    r -= prob[i];
    if (r < 0) return ids[i];
  }
  return ids.back();
}

int64_t VerifyDrafts(std::span<const float> logits, std::span<const int32_t> drafts,
                     const SamplingParams& p, int64_t position, SampleScratch* scratch,
                     std::vector<int32_t>* out) {
  const size_t k = drafts.size();
  DSV4_CHECK(logits.size() % (k + 1) == 0);
  const size_t vocab = logits.size() / (k + 1);
  out->clear();
  for (size_t i = 0; i <= k; ++i) {
    const int32_t t = SampleToken(logits.subspan(i * vocab, vocab), p,
                                  position + static_cast<int64_t>(i), scratch);
    out->push_back(t);
    if (i == k || t != drafts[i]) return static_cast<int64_t>(i);
  }
  return static_cast<int64_t>(k);  // not reached
}

}  // namespace dsv4::sample
