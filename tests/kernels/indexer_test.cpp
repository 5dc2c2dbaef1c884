// The FP4-key indexer scan vs the plain kernels (IndexerScores on decoded keys, TopK) on
// random shapes, page sizes, heavy score ties, and every ISA; the grouped scan (several
// queries, each with its own visible range) vs each query scanned alone and the plain kernels.
#include "kernels/cpu/indexer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/fp4.h"
#include "core/fp8.h"
#include "core/rng.h"
#include "isa_test_util.h"
#include "kernels/cpu/attention.h"
#include "kernels/ref/attention_ref.h"

namespace dsv4::kernels {
namespace {

// Keys in the cache's FP4 layout, spread over pages of `per_page` rows.
struct PackedKeys {
  int64_t dim = 0;
  std::vector<std::vector<uint8_t>> page_bytes;
  std::vector<const uint8_t*> pages;
  PagedRows rows;
  std::vector<float> decoded;  // FP32 [n, dim], as DecodeIndexerKeyFp4 gives
};

// `distinct` < n makes keys repeat (and so scores tie); scale codes spread over `scale_span`.
PackedKeys MakeKeys(int64_t n, int64_t dim, int64_t per_page, int64_t distinct, int scale_span,
                    Rng& rng) {
  PackedKeys k;
  k.dim = dim;
  const int64_t bytes = dim / 2 + dim / 32;
  std::vector<std::vector<uint8_t>> uniques(static_cast<size_t>(distinct));
  for (auto& u : uniques) {
    u.resize(static_cast<size_t>(bytes));
    for (int64_t b = 0; b < dim / 2; ++b) u[b] = static_cast<uint8_t>(rng.Below(256));
    for (int64_t b = 0; b < dim / 32; ++b) {
      u[dim / 2 + b] = static_cast<uint8_t>(124 + rng.Below(scale_span));
    }
  }
  for (int64_t i = 0; i < n; ++i) {
    if (i % per_page == 0) k.page_bytes.emplace_back(static_cast<size_t>(per_page * bytes));
    const auto& u = uniques[rng.Below(distinct)];
    std::copy(u.begin(), u.end(), k.page_bytes.back().begin() + (i % per_page) * bytes);
  }
  for (auto& p : k.page_bytes) k.pages.push_back(p.data());
  k.rows = {k.pages.data(), per_page, bytes};
  k.decoded.resize(static_cast<size_t>(n * dim));
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* r = k.rows.Row(i);
    for (int64_t d = 0; d < dim; ++d) {
      const uint8_t byte = r[d / 2];
      k.decoded[i * dim + d] =
          E2M1ToF32(d % 2 == 0 ? E2M1Low(byte) : E2M1High(byte)) * E8M0ToF32(r[dim / 2 + d / 32]);
    }
  }
  return k;
}

std::vector<BF16> RandomBf16(int64_t n, Rng& rng, double scale) {
  std::vector<BF16> v(static_cast<size_t>(n));
  for (auto& x : v) x = F32ToBf16(static_cast<float>(rng.Normal() * scale));
  return v;
}

TEST(IndexerFp4, ScoresAndTopKMatchThePlainKernelsOnEveryIsa) {
  Workspace ws;
  ScopedFineSplit split;
  Rng rng(5);
  ThreadPool pool(2);
  for (int trial = 0; trial < 30; ++trial) {
    const int64_t heads = 1 + rng.Below(9), dim = 32 * (1 + rng.Below(5));
    const int64_t n = 1 + rng.Below(trial % 5 == 0 ? 5000 : 400);
    const int64_t per_page = 1 + rng.Below(100);
    const int64_t distinct = trial % 3 == 0 ? 1 + rng.Below(6) : n;
    const PackedKeys keys = MakeKeys(n, dim, per_page, distinct, 1 + trial % 8, rng);
    const std::vector<BF16> q = RandomBf16(heads * dim, rng, 0.5);
    std::vector<BF16> w = RandomBf16(heads, rng, 0.3);
    // Zero weights of either sign (the BF16 path's paired term turns -0 products into +0).
    if (trial % 4 == 2) w[rng.Below(heads)] = BF16{0x8000};
    if (trial % 4 == 3) w[rng.Below(heads)] = BF16{0x0000};
    std::vector<float> expected(static_cast<size_t>(n));
    IndexerScores(pool, q.data(), w.data(), keys.decoded.data(), n, heads, dim, expected.data());
    const int64_t k = rng.Below(n + 5);
    const std::vector<int64_t> expected_top = ref::TopK(expected.data(), n, k);
    const IndexerQuery query{q.data(), w.data(), heads, dim};
    for (Isa isa : SupportedIsas()) {
      ScopedIsa scoped(isa);
      std::vector<float> scores(static_cast<size_t>(n));
      IndexerScoresFp4(pool, query, keys.rows, n, scores.data(), &ws);
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(std::bit_cast<uint32_t>(scores[i]), std::bit_cast<uint32_t>(expected[i]))
            << IsaName(isa) << " trial " << trial << " key " << i;
      }
      std::vector<int64_t> top;
      IndexerTopKFp4(pool, query, keys.rows, n, k, &top, &ws);

      ASSERT_EQ(top, expected_top) << IsaName(isa) << " trial " << trial << " k " << k;
    }
  }
}

// Tiles whose values would leave the FP32 normal range (tiny or huge key scales, subnormal or
// tiny q) must still give the canonical bits (the BF16 path falls back to FP32 for them); so
// must head weights whose products leave it (tiny or subnormal w: subnormal products; an
// infinite w: NaN and inf terms), which the BF16 path rounds the slow way.
TEST(IndexerFp4, ExtremeScalesAndTinyQueriesMatchOnEveryIsa) {
  Workspace ws;
  Rng rng(21);
  ThreadPool pool(2);
  const int64_t heads = 3, dim = 64, n = 200;
  for (int variant = 0; variant < 6; ++variant) {
    PackedKeys keys = MakeKeys(n, dim, 50, n, 4, rng);
    // Some keys get extreme scale codes (re-decoded below); not with the extreme weights,
    // whose tiles must take the BF16 path.
    for (int64_t i = 0; i < n && variant < 4; i += 7) {
      uint8_t* r = const_cast<uint8_t*>(keys.rows.Row(i));
      r[dim / 2 + rng.Below(dim / 32)] = variant % 2 == 0
                                             ? static_cast<uint8_t>(rng.Below(4))
                                             : static_cast<uint8_t>(250 + rng.Below(4));
      for (int64_t d = 0; d < dim; ++d) {
        const uint8_t byte = r[d / 2];
        keys.decoded[i * dim + d] =
            E2M1ToF32(d % 2 == 0 ? E2M1Low(byte) : E2M1High(byte)) * E8M0ToF32(r[dim / 2 + d / 32]);
      }
    }
    std::vector<BF16> q = RandomBf16(heads * dim, rng, variant < 2 ? 1e-30 : 0.5);
    if (variant == 3) q[5] = BF16{0x0003};  // a subnormal
    std::vector<BF16> w = RandomBf16(heads, rng, variant == 4 ? 3e-38 : 0.3);
    if (variant == 5) w[1] = BF16{0x7F80};  // +inf
    std::vector<float> expected(static_cast<size_t>(n));
    IndexerScores(pool, q.data(), w.data(), keys.decoded.data(), n, heads, dim, expected.data());
    for (Isa isa : SupportedIsas()) {
      ScopedIsa scoped(isa);
      std::vector<float> scores(static_cast<size_t>(n));
      IndexerScoresFp4(pool, {q.data(), w.data(), heads, dim}, keys.rows, n, scores.data(), &ws);
      for (int64_t i = 0; i < n; ++i) {
        const uint32_t a = std::bit_cast<uint32_t>(scores[i]),
                       b = std::bit_cast<uint32_t>(expected[i]);
        ASSERT_TRUE(a == b || (std::isnan(scores[i]) && std::isnan(expected[i])))
            << IsaName(isa) << " variant " << variant << " key " << i;
      }
    }
  }
}

TEST(IndexerFp4, TopKIsThreadCountInvariantWithTies) {
  Workspace ws;
  Rng rng(8);
  const PackedKeys keys = MakeKeys(20000, 128, 64, 7, 2, rng);  // 7 distinct scores at most
  const std::vector<BF16> q = RandomBf16(4 * 128, rng, 0.5);
  const std::vector<BF16> w = RandomBf16(4, rng, 0.3);
  const IndexerQuery query{q.data(), w.data(), 4, 128};
  ThreadPool one(1), two(2), three(3);
  std::vector<int64_t> a, b, c;
  IndexerTopKFp4(one, query, keys.rows, 20000, 300, &a, &ws);
  // The pool's threads claim key blocks as they come free, so which thread scores which block
  // changes from call to call: a few calls each.
  for (int call = 0; call < 4; ++call) {
    IndexerTopKFp4(two, query, keys.rows, 20000, 300, &b, &ws);
    IndexerTopKFp4(three, query, keys.rows, 20000, 300, &c, &ws);
    EXPECT_EQ(a, b);
    EXPECT_EQ(a, c);
  }
  EXPECT_EQ(a.size(), 300u);
}

// Each query of a group selects exactly what it selects alone and what the plain kernels
// select, with visible counts that differ within the group (ending mid-tile, 0, all keys),
// k above and below them, heavy ties, tiny queries (their tiles take the FP32 fallback beside
// the BF16 path of the others), 1-3 threads split as finely as possible, and every ISA.
TEST(IndexerFp4, GroupTopKMatchesEachQueryAloneOnEveryIsa) {
  Workspace ws, single_ws;
  ScopedFineSplit split;
  Rng rng(33);
  ThreadPool one(1), two(2), three(3);
  ThreadPool* pools[] = {&one, &two, &three};
  for (int trial = 0; trial < 40; ++trial) {
    const int64_t heads = 1 + rng.Below(6), dim = 32 * (1 + rng.Below(4));
    const int64_t n = 1 + rng.Below(trial % 5 == 0 ? 3000 : 300);
    const int64_t per_page = 1 + rng.Below(100);
    const int64_t distinct = trial % 3 == 0 ? 1 + rng.Below(6) : n;
    const PackedKeys keys = MakeKeys(n, dim, per_page, distinct, 1 + trial % 8, rng);
    const int64_t count = 1 + rng.Below(10);
    std::vector<std::vector<BF16>> q, w;
    std::vector<IndexerQuery> queries;
    for (int64_t j = 0; j < count; ++j) {
      q.push_back(RandomBf16(heads * dim, rng, trial % 4 == 1 && j % 2 == 0 ? 1e-30 : 0.5));
      w.push_back(RandomBf16(heads, rng, 0.3));
    }
    for (int64_t j = 0; j < count; ++j) queries.push_back({q[j].data(), w[j].data(), heads, dim});
    const std::vector<int64_t> visible = GroupVisible(n, count, 4, trial, rng);
    const int64_t k = rng.Below(n + 5);
    std::vector<std::vector<int64_t>> expected(static_cast<size_t>(count));
    for (int64_t j = 0; j < count; ++j) {
      if (visible[j] == 0) continue;
      std::vector<float> scores(static_cast<size_t>(visible[j]));
      IndexerScores(one, q[j].data(), w[j].data(), keys.decoded.data(), visible[j], heads, dim,
                    scores.data());
      expected[j] = ref::TopK(scores.data(), visible[j], k);
    }
    ExpectGroupTopKOnEveryIsa(
        pools, expected,
        [&](ThreadPool& pool, std::vector<int64_t>* top) {
          IndexerTopKFp4Group(pool, queries, visible, keys.rows, k, top, &ws);
        },
        [&](ThreadPool& pool, int64_t j, std::vector<int64_t>* top) {
          IndexerTopKFp4(pool, queries[j], keys.rows, visible[j], k, top, &single_ws);
        },
        "trial " + std::to_string(trial) + " k " + std::to_string(k));
  }
}

}  // namespace
}  // namespace dsv4::kernels
