// The V3.2 FP8-key indexer scan vs its scalar reference (ref::IndexerScoresFp8) and the full-
// score top-k (ref::TopK), on random shapes and page sizes, every ISA and fine thread splits:
// scores bit for bit, the streaming top-k index for index, with heavy ties, extreme codes,
// n < k and n == 0; the grouped scan (several queries, each with its own visible range) vs
// each query scanned alone and the reference.
#include "kernels/cpu/indexer_fp8.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/rng.h"
#include "isa_test_util.h"
#include "kernels/ref/attention_ref.h"
#include "kernels/ref/indexer_fp8_ref.h"

namespace dsv4::kernels {
namespace {

// A random E4M3 code, never NaN (0x7F / 0xFF).
uint8_t RandomCode(Rng& rng) {
  uint8_t c;
  do {
    c = static_cast<uint8_t>(rng.Below(256));
  } while ((c & 0x7F) == 0x7F);
  return c;
}

// Keys in the cache's FP8 layout ([dim E4M3][FP32 scale]), contiguous for the reference and
// copied onto pages of `per_page` rows for the kernel.
struct Fp8Keys {
  std::vector<uint8_t> contiguous;  // [n, dim + 4]
  std::vector<std::vector<uint8_t>> page_bytes;
  std::vector<const uint8_t*> pages;
  PagedRows rows;
};

// `distinct` < n makes keys repeat (and so scores tie). codes(rng) draws each code;
// scale(rng) each key's scale.
template <typename Code, typename Scale>
Fp8Keys MakeKeys(int64_t n, int64_t dim, int64_t per_page, int64_t distinct, Rng& rng,
                 const Code& code, const Scale& scale) {
  Fp8Keys k;
  const int64_t bytes = IndexerKeyFp8Bytes(dim);
  std::vector<std::vector<uint8_t>> uniques(static_cast<size_t>(distinct));
  for (auto& u : uniques) {
    u.resize(static_cast<size_t>(bytes));
    for (int64_t d = 0; d < dim; ++d) u[d] = code(rng);
    const float s = scale(rng);
    std::memcpy(u.data() + dim, &s, sizeof(s));
  }
  k.contiguous.resize(static_cast<size_t>(n * bytes));
  for (int64_t i = 0; i < n; ++i) {
    const auto& u = uniques[rng.Below(distinct)];
    std::copy(u.begin(), u.end(), k.contiguous.begin() + i * bytes);
    if (i % per_page == 0) k.page_bytes.emplace_back(static_cast<size_t>(per_page * bytes));
    std::copy(u.begin(), u.end(), k.page_bytes.back().begin() + (i % per_page) * bytes);
  }
  for (auto& p : k.page_bytes) k.pages.push_back(p.data());
  k.rows = {k.pages.data(), per_page, bytes};
  return k;
}

Fp8Keys RandomKeys(int64_t n, int64_t dim, int64_t per_page, int64_t distinct, Rng& rng) {
  return MakeKeys(n, dim, per_page, distinct, rng, RandomCode, [](Rng& r) {
    return static_cast<float>(std::exp2(static_cast<double>(r.Below(20)) - 12.0));
  });
}

std::vector<uint8_t> RandomCodes(int64_t n, Rng& rng) {
  std::vector<uint8_t> v(static_cast<size_t>(n));
  for (auto& c : v) c = RandomCode(rng);
  return v;
}

std::vector<float> RandomWeights(int64_t n, Rng& rng) {
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<float>(rng.Normal() * 0.01);
  return v;
}

// The kernel's scores and top-k on every ISA against the reference's scores and full top-k.
void ExpectMatchesReference(ThreadPool& pool, const std::vector<uint8_t>& q,
                            const std::vector<float>& w, const Fp8Keys& keys, int64_t n,
                            int64_t heads, int64_t dim, int64_t k, const std::string& what) {
  Workspace ws;
  std::vector<float> expected(static_cast<size_t>(n));
  ref::IndexerScoresFp8(q.data(), w.data(), keys.contiguous.data(), n, heads, dim, expected.data());
  const std::vector<int64_t> expected_top = ref::TopK(expected.data(), n, k);
  const IndexerQueryFp8 query{q.data(), w.data(), heads, dim};
  for (Isa isa : SupportedIsas()) {
    ScopedIsa scoped(isa);
    std::vector<float> scores(static_cast<size_t>(n));
    IndexerScoresFp8(pool, query, keys.rows, n, scores.data(), &ws);
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_EQ(std::bit_cast<uint32_t>(scores[i]), std::bit_cast<uint32_t>(expected[i]))
          << IsaName(isa) << " " << what << " key " << i << ": " << scores[i] << " vs "
          << expected[i];
    }
    std::vector<int64_t> top = {-1, -2};  // stale contents are replaced
    IndexerTopKFp8(pool, query, keys.rows, n, k, &top, &ws);
    ASSERT_EQ(top, expected_top) << IsaName(isa) << " " << what << " k " << k;
  }
}

TEST(IndexerFp8, ScoresAndTopKMatchTheReferenceOnEveryIsa) {
  ScopedFineSplit split;
  Rng rng(5);
  ThreadPool pool(3);
  for (int trial = 0; trial < 30; ++trial) {
    const int64_t heads = 1 + rng.Below(9), dim = 16 * (1 + rng.Below(10));
    const int64_t n = 1 + rng.Below(trial % 5 == 0 ? 5000 : 400);
    const int64_t per_page = 1 + rng.Below(100);
    const int64_t distinct = trial % 3 == 0 ? 1 + rng.Below(6) : n;
    const Fp8Keys keys = RandomKeys(n, dim, per_page, distinct, rng);
    const std::vector<uint8_t> q = RandomCodes(heads * dim, rng);
    const std::vector<float> w = RandomWeights(heads, rng);
    const int64_t k = rng.Below(n + 5);
    ExpectMatchesReference(pool, q, w, keys, n, heads, dim, k, "trial " + std::to_string(trial));
  }
}

// The V3.2 shape (64 heads x 128, top-2048) across several scan chunks and ranges.
TEST(IndexerFp8, V32ShapeMatchesTheReferenceOnEveryIsa) {
  Rng rng(11);
  ThreadPool pool(2);
  const int64_t heads = 64, dim = 128, n = 6000;
  const Fp8Keys keys = RandomKeys(n, dim, 64, n, rng);
  const std::vector<uint8_t> q = RandomCodes(heads * dim, rng);
  const std::vector<float> w = RandomWeights(heads, rng);
  ExpectMatchesReference(pool, q, w, keys, n, heads, dim, 2048, "v3.2");
}

// The largest and smallest codes (sums up to dim x 448^2, products down to 2^-18), signed
// zeros and arbitrary (not power-of-two) scales keep the canonical bits on every path.
TEST(IndexerFp8, ExtremeCodesAndScalesMatchOnEveryIsa) {
  ScopedFineSplit split;
  Rng rng(21);
  ThreadPool pool(2);
  const int64_t heads = 5, dim = 128, n = 300;
  const uint8_t extremes[] = {0x7E, 0xFE, 0x01, 0x81, 0x00, 0x80, 0x08, 0x77};
  auto extreme = [&](Rng& r) { return extremes[r.Below(8)]; };
  for (int variant = 0; variant < 3; ++variant) {
    const Fp8Keys keys = MakeKeys(
        n, dim, 37, n, rng, [&](Rng& r) { return variant == 0 ? extreme(r) : RandomCode(r); },
        [](Rng& r) { return static_cast<float>(r.Uniform(1e-3, 10)); });
    std::vector<uint8_t> q = RandomCodes(heads * dim, rng);
    if (variant != 2) {
      for (auto& c : q) c = extreme(rng);
    }
    ExpectMatchesReference(pool, q, RandomWeights(heads, rng), keys, n, heads, dim, 50,
                           "variant " + std::to_string(variant));
  }
}

TEST(IndexerFp8, TiesGoToTheLowerIndex) {
  Workspace ws;
  Rng rng(3);
  ThreadPool pool(2);
  const int64_t heads = 3, dim = 32, n = 1000;
  const Fp8Keys keys = RandomKeys(n, dim, 64, 4, rng);  // 4 distinct scores at most
  const std::vector<float> w = RandomWeights(heads, rng);
  ExpectMatchesReference(pool, RandomCodes(heads * dim, rng), w, keys, n, heads, dim, 300, "ties");
  // An all-zero query scores every key 0: the top-k is the first k keys.
  const std::vector<uint8_t> zero(static_cast<size_t>(heads * dim), 0);
  for (Isa isa : SupportedIsas()) {
    ScopedIsa scoped(isa);
    std::vector<int64_t> top;
    IndexerTopKFp8(pool, {zero.data(), w.data(), heads, dim}, keys.rows, n, 100, &top, &ws);
    ASSERT_EQ(top.size(), 100u);
    for (int64_t i = 0; i < 100; ++i) EXPECT_EQ(top[i], i) << IsaName(isa);
  }
}

TEST(IndexerFp8, FewerKeysThanKAndNoKeys) {
  Workspace ws;
  Rng rng(4);
  ThreadPool pool(2);
  const int64_t heads = 2, dim = 16;
  const Fp8Keys keys = RandomKeys(10, dim, 4, 10, rng);
  const std::vector<uint8_t> q = RandomCodes(heads * dim, rng);
  const std::vector<float> w = RandomWeights(heads, rng);
  const IndexerQueryFp8 query{q.data(), w.data(), heads, dim};
  for (Isa isa : SupportedIsas()) {
    ScopedIsa scoped(isa);
    std::vector<int64_t> top = {7};
    IndexerTopKFp8(pool, query, keys.rows, 10, 2048, &top, &ws);  // n < k: every key
    EXPECT_EQ(top, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})) << IsaName(isa);
    IndexerTopKFp8(pool, query, keys.rows, 0, 2048, &top, &ws);  // n == 0
    EXPECT_TRUE(top.empty()) << IsaName(isa);
    top = {7};
    IndexerTopKFp8(pool, query, keys.rows, 10, 0, &top, &ws);  // k == 0
    EXPECT_TRUE(top.empty()) << IsaName(isa);
    IndexerScoresFp8(pool, query, keys.rows, 0, nullptr, &ws);  // n == 0: nothing written
  }
}

TEST(IndexerFp8, TopKIsThreadCountInvariantWithTies) {
  Workspace ws;
  Rng rng(8);
  const int64_t heads = 4, dim = 128, n = 20000;
  const Fp8Keys keys = RandomKeys(n, dim, 64, 7, rng);  // 7 distinct scores at most
  const std::vector<uint8_t> q = RandomCodes(heads * dim, rng);
  const std::vector<float> w = RandomWeights(heads, rng);
  const IndexerQueryFp8 query{q.data(), w.data(), heads, dim};
  ThreadPool one(1), two(2), three(3);
  std::vector<int64_t> a, b, c;
  IndexerTopKFp8(one, query, keys.rows, n, 300, &a, &ws);
  IndexerTopKFp8(two, query, keys.rows, n, 300, &b, &ws);
  IndexerTopKFp8(three, query, keys.rows, n, 300, &c, &ws);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, c);
  EXPECT_EQ(a.size(), 300u);
}

// Each query of a group selects exactly what it selects alone and what the reference's full
// top-k selects, with visible counts that differ within the group (ending mid-tile, 0, all
// keys), k above and below them, heavy ties, 1-3 threads split finely, and every ISA.
TEST(IndexerFp8, GroupTopKMatchesEachQueryAloneOnEveryIsa) {
  Workspace ws, single_ws;
  ScopedFineSplit split;
  Rng rng(34);
  ThreadPool one(1), two(2), three(3);
  ThreadPool* pools[] = {&one, &two, &three};
  for (int trial = 0; trial < 30; ++trial) {
    const int64_t heads = 1 + rng.Below(6), dim = 16 * (1 + rng.Below(8));
    const int64_t n = 1 + rng.Below(trial % 5 == 0 ? 3000 : 300);
    const int64_t per_page = 1 + rng.Below(100);
    const int64_t distinct = trial % 3 == 0 ? 1 + rng.Below(6) : n;
    const Fp8Keys keys = RandomKeys(n, dim, per_page, distinct, rng);
    const int64_t count = 1 + rng.Below(10);
    std::vector<std::vector<uint8_t>> q;
    std::vector<std::vector<float>> w;
    std::vector<IndexerQueryFp8> queries;
    for (int64_t j = 0; j < count; ++j) {
      q.push_back(RandomCodes(heads * dim, rng));
      w.push_back(RandomWeights(heads, rng));
    }
    for (int64_t j = 0; j < count; ++j) queries.push_back({q[j].data(), w[j].data(), heads, dim});
    const std::vector<int64_t> visible = GroupVisible(n, count, 1, trial, rng);
    const int64_t k = rng.Below(n + 5);
    std::vector<std::vector<int64_t>> expected(static_cast<size_t>(count));
    for (int64_t j = 0; j < count; ++j) {
      std::vector<float> scores(static_cast<size_t>(visible[j]));
      ref::IndexerScoresFp8(q[j].data(), w[j].data(), keys.contiguous.data(), visible[j], heads,
                            dim, scores.data());
      if (visible[j] > 0) expected[j] = ref::TopK(scores.data(), visible[j], k);
    }
    ExpectGroupTopKOnEveryIsa(
        pools, expected,
        [&](ThreadPool& pool, std::vector<int64_t>* top) {
          IndexerTopKFp8Group(pool, queries, visible, keys.rows, k, top, &ws);
        },
        [&](ThreadPool& pool, int64_t j, std::vector<int64_t>* top) {
          IndexerTopKFp8(pool, queries[j], keys.rows, visible[j], k, top, &single_ws);
        },
        "trial " + std::to_string(trial) + " k " + std::to_string(k));
  }
}

}  // namespace
}  // namespace dsv4::kernels
