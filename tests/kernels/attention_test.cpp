// Attention-side kernels vs the scalar references on random shapes.
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "core/rng.h"
#include "kernels/cpu/attention.h"
#include "kernels/ref/attention_ref.h"

namespace dsv4::kernels {
namespace {

std::vector<BF16> RandomBf16(int64_t n, Rng& rng, double scale = 1.0) {
  std::vector<BF16> v(static_cast<size_t>(n));
  for (auto& x : v) x = F32ToBf16(static_cast<float>(rng.Normal() * scale));
  return v;
}
std::vector<float> RandomBf16Values(int64_t n, Rng& rng) {
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = RoundBf16(static_cast<float>(rng.Normal()));
  return v;
}

TEST(SparseAttention, FastMatchesReference) {
  Workspace ws;
  Rng rng(1);
  ThreadPool pool(2);
  for (int trial = 0; trial < 10; ++trial) {
    const int64_t heads = 1 + rng.Below(8), d = 64 * (1 + rng.Below(4)), n = 1 + rng.Below(200);
    std::vector<BF16> q = RandomBf16(heads * d, rng, 0.3);
    std::vector<float> kv = RandomBf16Values(n * d, rng);
    std::vector<float> sink(static_cast<size_t>(heads));
    for (auto& s : sink) s = static_cast<float>(rng.Normal() * 2);
    std::vector<BF16> a(heads * d), b(heads * d);
    const float scale = 1.0f / std::sqrt(static_cast<float>(d));
    ref::SparseAttention(q.data(), kv.data(), n, sink.data(), heads, d, scale, a.data());
    SparseAttention(pool, q.data(), kv.data(), n, sink.data(), heads, d, scale, b.data(), &ws);
    for (int64_t i = 0; i < heads * d; ++i) {
      EXPECT_NEAR(Bf16ToF32(a[i]), Bf16ToF32(b[i]), 1e-2f * (std::abs(Bf16ToF32(a[i])) + 0.05f));
    }
  }
}

TEST(SparseAttention, SinkOnlyEntersTheDenominator) {
  // One entry: o = v * e^0 / (e^0 + e^(sink - s)). With sink = s the output is v / 2.
  const int64_t d = 64;
  std::vector<BF16> q(d, F32ToBf16(0.0f));
  std::vector<float> kv(d, 2.0f);
  const float sink = 0.0f;  // logits are 0 since q = 0
  std::vector<BF16> out(d);
  ref::SparseAttention(q.data(), kv.data(), 1, &sink, 1, d, 1.0f, out.data());
  for (int64_t k = 0; k < d; ++k) EXPECT_EQ(Bf16ToF32(out[k]), 1.0f);
}

TEST(IndexerScores, FastMatchesReferenceAndIsBf16Valued) {
  Rng rng(2);
  ThreadPool pool(2);
  const int64_t heads = 4, dim = 128, n = 777;
  std::vector<BF16> q = RandomBf16(heads * dim, rng), w = RandomBf16(heads, rng, 0.1);
  std::vector<float> keys = RandomBf16Values(n * dim, rng);
  std::vector<float> a(n), b(n);
  ref::IndexerScores(q.data(), w.data(), keys.data(), n, heads, dim, a.data());
  IndexerScores(pool, q.data(), w.data(), keys.data(), n, heads, dim, b.data());
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_EQ(a[i], RoundBf16(a[i]));
    EXPECT_NEAR(a[i], b[i], 2e-2f * (std::abs(a[i]) + 0.01f));
  }
}

TEST(TopK, HeapMatchesStableSortIncludingTies) {
  Rng rng(3);
  for (int trial = 0; trial < 50; ++trial) {
    const int64_t n = rng.Below(300), k = rng.Below(40);
    std::vector<float> s(static_cast<size_t>(n));
    for (auto& v : s) v = static_cast<float>(rng.Below(7));  // many ties
    EXPECT_EQ(TopK(s.data(), n, k), ref::TopK(s.data(), n, k)) << trial;
  }
  const float s[] = {1, 5, 5, 3, 5};
  EXPECT_EQ(ref::TopK(s, 5, 2), (std::vector<int64_t>{1, 2}));  // ties -> lower index
  EXPECT_EQ(TopK(s, 5, 9), (std::vector<int64_t>{0, 1, 2, 3, 4}));
}

}  // namespace
}  // namespace dsv4::kernels
