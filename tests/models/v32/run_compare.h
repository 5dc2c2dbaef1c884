// Helpers of the V3.2 model tests: full-sequence runs of the fast path and of the plain
// reference with their discrete decisions (DSA top-k, routing), and a per-position comparison
// of two runs split by whether those decisions agreed.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <vector>

#include <gtest/gtest.h>

#include "core/thread_pool.h"
#include "checkpoint/config.h"
#include "checkpoint/tensor.h"
#include "kv/v32_cache.h"
#include "models/v32/model.h"
#include "models/v32/reference/forward.h"

namespace dsv4::v32::test {

inline double Cosine(const float* a, const float* b, int64_t n) {
  double ab = 0, aa = 0, bb = 0;
  for (int64_t i = 0; i < n; ++i) {
    ab += static_cast<double>(a[i]) * b[i];
    aa += static_cast<double>(a[i]) * a[i];
    bb += static_cast<double>(b[i]) * b[i];
  }
  return ab / std::sqrt(aa * bb);
}

// Logits and decisions of one full-sequence run of the fast path or of the reference.
struct RunResult {
  std::vector<float> logits;                                // [T, vocab]
  std::vector<std::vector<std::vector<int64_t>>> selected;  // [layer][t]: DSA top-k
  std::vector<std::vector<std::vector<int32_t>>> experts;   // [layer][t]; empty when dense
};

inline RunResult FastRun(const checkpoint::ModelConfig& c, const checkpoint::TensorSource& src,
                         const std::vector<int32_t>& tokens) {
  auto m = Model::Create(c, src).value();
  ThreadPool pool(2);
  kv::V32SequenceCache cache(c);
  RunResult r;
  ForwardTrace trace;
  EXPECT_TRUE(m->Forward(pool, cache, tokens, LogitsMode::kAll, &r.logits, &trace).ok());
  for (ForwardTrace::Layer& l : trace.layers) {
    r.selected.push_back(std::move(l.selected));
    r.experts.push_back(std::move(l.experts));
  }
  return r;
}

inline RunResult ReferenceRun(const checkpoint::ModelConfig& c, const checkpoint::TensorSource& src,
                              const std::vector<int32_t>& tokens) {
  RunResult r;
  reference::ForwardTrace trace;
  const auto start = std::chrono::steady_clock::now();
  r.logits = reference::Forward(c, src, tokens, &trace).value();
  std::printf("reference forward, %zu tokens: %.2f s\n", tokens.size(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  for (reference::LayerTrace& l : trace.layers) {
    r.selected.push_back(std::move(l.selected));
    r.experts.push_back(std::move(l.experts));
  }
  return r;
}

// Per-position logit cosines of two runs, split by whether every discrete decision (the DSA
// top-k of each layer, the expert routing) agreed at that position.
struct Agreement {
  double min_all = 1.0, mean_all = 0.0, min_agreeing = 1.0;
  int64_t agreeing = 0;                  // positions where every decision agreed
  std::vector<int64_t> selection_flips;  // per layer: positions whose top-k differs
  double mean_overlap = 0.0;             // mean |A ∩ B| / |A| over (layer, position)
  int64_t routing_flips = 0;             // (layer, position) pairs routed differently
};

inline Agreement Compare(const RunResult& a, const RunResult& b, int64_t vocab, const char* what) {
  Agreement g;
  const int64_t L = static_cast<int64_t>(a.selected.size());
  const int64_t T = static_cast<int64_t>(a.logits.size()) / vocab;
  EXPECT_EQ(static_cast<int64_t>(b.selected.size()), L);
  g.selection_flips.assign(static_cast<size_t>(L), 0);
  for (int64_t t = 0; t < T; ++t) {
    bool agreed = true;
    for (int64_t l = 0; l < L; ++l) {
      const std::vector<int64_t>& sa = a.selected[l][t];
      const std::vector<int64_t>& sb = b.selected[l][t];
      std::vector<int64_t> common;
      std::set_intersection(sa.begin(), sa.end(), sb.begin(), sb.end(), std::back_inserter(common));
      g.mean_overlap += static_cast<double>(common.size()) / static_cast<double>(sa.size()) /
                        static_cast<double>(L * T);
      g.selection_flips[l] += sa != sb;
      EXPECT_EQ(a.experts[l].empty(), b.experts[l].empty());
      const bool same_route = a.experts[l].empty() || a.experts[l][t] == b.experts[l][t];
      g.routing_flips += !same_route;
      agreed &= sa == sb && same_route;
    }
    const double cos = Cosine(a.logits.data() + t * vocab, b.logits.data() + t * vocab, vocab);
    g.min_all = std::min(g.min_all, cos);
    g.mean_all += cos / static_cast<double>(T);
    if (agreed) {
      ++g.agreeing;
      g.min_agreeing = std::min(g.min_agreeing, cos);
    }
  }
  std::printf(
      "%s: %lld of %lld positions with identical decisions, min cosine there %.7f; all "
      "positions min %.6f, mean %.7f; top-k flips per layer",
      what, static_cast<long long>(g.agreeing), static_cast<long long>(T), g.min_agreeing,
      g.min_all, g.mean_all);
  for (int64_t f : g.selection_flips) std::printf(" %lld", static_cast<long long>(f));
  std::printf(" (mean overlap %.4f), routing flips %lld\n", g.mean_overlap,
              static_cast<long long>(g.routing_flips));
  return g;
}

}  // namespace dsv4::v32::test
