// Gathered attention on every ISA: dense rows and packed cache entries give the scalar path's
// bits (packed entries decoded in place equal dense rows of their decoded values).
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/fp8.h"
#include "core/rng.h"
#include "isa_test_util.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/attention_internal.h"
#include "kernels/ref/attention_exp_ref.h"

namespace dsv4::kernels {
namespace {

// n packed entries of the cache layout (random codes, scales and BF16 RoPE part), each in
// its own allocation as the pages of a cache are, and their decoded FP32 rows.
struct Entries {
  std::vector<std::vector<uint8_t>> bytes;
  std::vector<const uint8_t*> ptrs;
  std::vector<float> decoded;
};

Entries MakeEntries(int64_t n, int64_t d_nope, int64_t rope, Rng& rng) {
  Entries e;
  const int64_t d = d_nope + rope, size = d_nope + d_nope / 64 + 2 * rope;
  e.decoded.resize(static_cast<size_t>(n * d));
  for (int64_t j = 0; j < n; ++j) {
    std::vector<uint8_t> b(static_cast<size_t>(size));
    for (int64_t k = 0; k < d_nope; ++k) {
      do b[k] = static_cast<uint8_t>(rng.Below(256));
      while ((b[k] & 0x7F) == 0x7F);
    }
    for (int64_t k = 0; k < d_nope / 64; ++k)
      b[d_nope + k] = static_cast<uint8_t>(118 + rng.Below(8));
    for (int64_t k = 0; k < rope; ++k) {
      const BF16 v = F32ToBf16(static_cast<float>(rng.Normal()));
      std::memcpy(b.data() + d_nope + d_nope / 64 + 2 * k, &v, 2);
      e.decoded[j * d + d_nope + k] = Bf16ToF32(v);
    }
    for (int64_t k = 0; k < d_nope; ++k) {
      e.decoded[j * d + k] = E4M3ToF32(b[k]) * E8M0ToF32(b[d_nope + k / 64]);
    }
    e.bytes.push_back(std::move(b));
  }
  for (const auto& b : e.bytes) e.ptrs.push_back(b.data());
  return e;
}

std::vector<uint16_t> Bits(const std::vector<BF16>& v) {
  std::vector<uint16_t> out;
  for (BF16 x : v) out.push_back(x.bits);
  return out;
}

TEST(SparseAttentionIsa, PackedAndDenseMatchScalarBitForBit) {
  Workspace ws;
  ScopedFineSplit split;
  Rng rng(11);
  ThreadPool pool(2);
  const int64_t nopes[] = {64, 128, 448};
  const int64_t ropes[] = {16, 64};
  for (int trial = 0; trial < 24; ++trial) {
    const int64_t d_nope = nopes[rng.Below(3)], rope = ropes[rng.Below(2)], d = d_nope + rope;
    // Up to 20 heads: the AVX-512 softmax's blocks of 8 and a partial one.
    const int64_t heads = 1 + rng.Below(20), n = 1 + rng.Below(trial % 4 == 0 ? 700 : 60);
    const Entries e = MakeEntries(n, d_nope, rope, rng);
    std::vector<BF16> q(static_cast<size_t>(heads * d));
    for (auto& v : q) v = F32ToBf16(static_cast<float>(rng.Normal() * 0.2));
    std::vector<float> sink(static_cast<size_t>(heads));
    for (auto& s : sink) s = static_cast<float>(rng.Normal() * 2);
    const float scale = 1.0f / std::sqrt(static_cast<float>(d));
    std::vector<BF16> expected(static_cast<size_t>(heads * d));
    {
      ScopedIsa scalar(Isa::kScalar);
      SparseAttention(pool, q.data(), e.decoded.data(), n, sink.data(), heads, d, scale,
                      expected.data(), &ws);
    }
    for (Isa isa : SupportedIsas()) {
      ScopedIsa scoped(isa);
      std::vector<BF16> dense(expected.size()), packed(expected.size());
      SparseAttention(pool, q.data(), e.decoded.data(), n, sink.data(), heads, d, scale,
                      dense.data(), &ws);
      SparseAttentionPacked(pool, q.data(), e.ptrs.data(), n, sink.data(), heads, d_nope, rope,
                            scale, packed.data(), &ws);
      ASSERT_EQ(Bits(dense), Bits(expected)) << IsaName(isa) << " dense, trial " << trial;
      ASSERT_EQ(Bits(packed), Bits(expected)) << IsaName(isa) << " packed, trial " << trial;
    }
  }
}

// The passes split their heads over the pool's threads: 1, 2 and 3 threads give the same bits
// on every ISA (odd head counts, partial entry tiles).
TEST(SparseAttentionIsa, ThreadCountsGiveTheSameBits) {
  Workspace ws;
  ScopedFineSplit split;
  Rng rng(17);
  ThreadPool one(1), two(2), three(3);
  struct Shape {
    int64_t d_nope, rope, heads, n;
  };
  for (const Shape& sh : {Shape{448, 64, 7, 203}, Shape{128, 64, 3, 37}, Shape{64, 32, 2, 1}}) {
    const int64_t d = sh.d_nope + sh.rope;
    const Entries e = MakeEntries(sh.n, sh.d_nope, sh.rope, rng);
    std::vector<BF16> q(static_cast<size_t>(sh.heads * d));
    for (auto& v : q) v = F32ToBf16(static_cast<float>(rng.Normal() * 0.2));
    std::vector<float> sink(static_cast<size_t>(sh.heads));
    for (auto& s : sink) s = static_cast<float>(rng.Normal());
    for (Isa isa : SupportedIsas()) {
      ScopedIsa scoped(isa);
      std::vector<BF16> expected(q.size());
      SparseAttentionPacked(one, q.data(), e.ptrs.data(), sh.n, sink.data(), sh.heads, sh.d_nope,
                            sh.rope, 0.05f, expected.data(), &ws);
      for (ThreadPool* pool : {&two, &three}) {
        std::vector<BF16> got(q.size());
        SparseAttentionPacked(*pool, q.data(), e.ptrs.data(), sh.n, sink.data(), sh.heads,
                              sh.d_nope, sh.rope, 0.05f, got.data(), &ws);
        ASSERT_EQ(Bits(got), Bits(expected))
            << IsaName(isa) << " threads " << pool->num_threads() << " n " << sh.n;
      }
    }
  }
}

// Inputs whose products or sums would leave the FP32 normal range (tiny or huge queries,
// softmax weights that underflow, tiny entry scales, subnormal RoPE values) must still give
// the scalar bits: the BF16 passes fall back to FP32 for them.
TEST(SparseAttentionIsa, ExtremeRangesMatchScalar) {
  Workspace ws;
  Rng rng(13);
  ThreadPool pool(2);
  ScopedFineSplit split;
  const int64_t d_nope = 128, rope = 64, d = d_nope + rope, heads = 5, n = 70;
  const double q_scales[] = {1e-30, 60.0, 0.2, 0.2};
  for (int variant = 0; variant < 4; ++variant) {
    Entries e = MakeEntries(n, d_nope, rope, rng);
    if (variant == 2) {  // tiny block scales on a few entries
      for (int64_t j = 0; j < n; j += 9)
        e.bytes[j][d_nope] = static_cast<uint8_t>(1 + rng.Below(4));
    }
    if (variant == 3) {  // a subnormal RoPE value
      const BF16 tiny{0x0005};
      std::memcpy(e.bytes[3].data() + d_nope + d_nope / 64 + 10, &tiny, 2);
    }
    for (int64_t j = 0; j < n; ++j) {  // re-decode
      for (int64_t k = 0; k < d_nope; ++k) {
        e.decoded[j * d + k] = E4M3ToF32(e.bytes[j][k]) * E8M0ToF32(e.bytes[j][d_nope + k / 64]);
      }
      for (int64_t k = 0; k < rope; ++k) {
        BF16 v;
        std::memcpy(&v, e.bytes[j].data() + d_nope + d_nope / 64 + 2 * k, 2);
        e.decoded[j * d + d_nope + k] = Bf16ToF32(v);
      }
    }
    std::vector<BF16> q(static_cast<size_t>(heads * d));
    for (auto& v : q) v = F32ToBf16(static_cast<float>(rng.Normal() * q_scales[variant]));
    std::vector<float> sink(static_cast<size_t>(heads), 0.0f);
    std::vector<BF16> expected(q.size());
    {
      ScopedIsa scalar(Isa::kScalar);
      SparseAttention(pool, q.data(), e.decoded.data(), n, sink.data(), heads, d, 0.05f,
                      expected.data(), &ws);
    }
    for (Isa isa : SupportedIsas()) {
      ScopedIsa scoped(isa);
      std::vector<BF16> packed(q.size());
      SparseAttentionPacked(pool, q.data(), e.ptrs.data(), n, sink.data(), heads, d_nope, rope,
                            0.05f, packed.data(), &ws);
      ASSERT_EQ(Bits(packed), Bits(expected)) << IsaName(isa) << " variant " << variant;
    }
  }
}

// The softmax exponential 16 lanes at a time equals the scalar ExpF on every input class:
// a sweep over every FP32 exponent (both signs, random mantissas), the special-path
// boundaries (±88, overflow, underflow, may-underflow), ±0, ±inf, NaN; odd counts for the tail.
TEST(SparseAttentionIsa, ExpFAvx512MatchesScalar) {
  if (!IsaSupported(Isa::kAvx512)) GTEST_SKIP() << "no AVX-512";
  Rng rng(21);
  std::vector<float> x;
  for (uint32_t sign = 0; sign < 2; ++sign) {
    for (uint32_t field = 0; field < 256; ++field) {
      for (int i = 0; i < 64; ++i) {
        const uint32_t mantissa = static_cast<uint32_t>(rng.Below(1u << 23));
        x.push_back(std::bit_cast<float>((sign << 31) | (field << 23) | mantissa));
      }
    }
  }
  for (uint32_t bits : {exp_constants::kOverflow, exp_constants::kUnderflow,
                        exp_constants::kMayUnderflow, 0x42b00000u, 0xc2b00000u}) {
    for (int delta = -3; delta <= 3; ++delta) x.push_back(std::bit_cast<float>(bits + delta));
  }
  for (float v : {0.0f, -0.0f, INFINITY, -INFINITY, NAN, -NAN}) x.push_back(v);
  for (int i = 0; i < 100000; ++i) x.push_back(static_cast<float>(-rng.Uniform() * 110.0));
  x.resize(x.size() / 16 * 16 + 7);
  std::vector<float> fast(x.size());
  internal::ExpFAvx512(x.data(), static_cast<int64_t>(x.size()), fast.data());
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(std::bit_cast<uint32_t>(fast[i]), std::bit_cast<uint32_t>(ExpF(x[i])))
        << "x bits " << std::hex << std::bit_cast<uint32_t>(x[i]);
  }
}

TEST(SparseAttentionIsa, OddWidthsFallBackToScalar) {
  Workspace ws;
  Rng rng(12);
  ThreadPool pool(2);
  const int64_t heads = 3, d = 40, n = 17;
  std::vector<BF16> q(heads * d);
  for (auto& v : q) v = F32ToBf16(static_cast<float>(rng.Normal()));
  std::vector<float> kv(n * d), sink(heads, 0.5f);
  for (auto& v : kv) v = RoundBf16(static_cast<float>(rng.Normal()));
  std::vector<BF16> a(heads * d), b(heads * d);
  {
    ScopedIsa scalar(Isa::kScalar);
    SparseAttention(pool, q.data(), kv.data(), n, sink.data(), heads, d, 0.1f, a.data(), &ws);
  }
  SparseAttention(pool, q.data(), kv.data(), n, sink.data(), heads, d, 0.1f, b.data(), &ws);
  EXPECT_EQ(Bits(a), Bits(b));
}

}  // namespace
}  // namespace dsv4::kernels
