// The fast path's batched mHC (src/models/v4/mhc.h) and the shared Hadamard rotation
// (src/models/common/hadamard.h) against the plain reference (src/models/v4/reference), bit
// for bit, on random data: several row blocks, rows split finely over threads, and a partial
// block at the end.
#include <cmath>
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "core/bf16.h"
#include "core/rng.h"
#include "kernels/cpu/parallel.h"
#include "models/common/hadamard.h"
#include "models/v4/mhc.h"
#include "models/v4/reference/mhc.h"
#include "models/v4/reference/numerics.h"

namespace dsv4::v4 {
namespace {

constexpr int64_t kHc = 4;
constexpr int64_t kDim = 200;    // ends in a partial 64-column block
constexpr int64_t kRows = 150;   // two full row blocks of 64 and a partial one

// Splits every pool loop as finely as possible while alive.
class ScopedFineSplit {
 public:
  ScopedFineSplit() : saved_(kernels::MinTaskWork()) { kernels::SetMinTaskWorkForTesting(1); }
  ~ScopedFineSplit() { kernels::SetMinTaskWorkForTesting(saved_); }

 private:
  int64_t saved_;
};

std::vector<float> Normals(Rng& rng, int64_t n, double scale) {
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = static_cast<float>(scale * rng.Normal());
  return v;
}

// BF16 streams [rows, hc, D] and the same values as floats.
void RandomStreams(Rng& rng, std::vector<BF16>* x, std::vector<float>* xf) {
  x->resize(static_cast<size_t>(kRows * kHc * kDim));
  xf->resize(x->size());
  for (size_t i = 0; i < x->size(); ++i) {
    (*x)[i] = F32ToBf16(static_cast<float>(rng.Normal()));
    (*xf)[i] = Bf16ToF32((*x)[i]);
  }
}

// Random parameters of one site, as both forwards see them (`p` owns the arrays).
MhcWeights RandomSite(Rng& rng, int64_t mix, bool head, reference::HcParams* p) {
  p->fn = Normals(rng, mix * kHc * kDim, 0.05);
  p->base = Normals(rng, mix, 0.5);
  p->scale = Normals(rng, head ? 1 : 3, 1.0);
  MhcWeights w;
  w.fn = LinearWeight{kernels::LinearKind::kF32, mix, kHc * kDim};
  w.fn.f32 = p->fn.data();
  w.base = p->base.data();
  w.scale = p->scale.data();
  return w;
}

void ExpectBitsEqual(const BF16* fast, const std::vector<float>& ref, const char* what) {
  for (size_t i = 0; i < ref.size(); ++i) {
    ASSERT_EQ(fast[i].bits, F32ToBf16(ref[i]).bits) << what << " element " << i;
  }
}

TEST(V4MhcBatched, HcPreAndHcPostMatchTheReferenceBitForBit) {
  ScopedFineSplit split;
  ThreadPool pool(3);
  Rng rng(11);
  std::vector<BF16> x;
  std::vector<float> xf;
  RandomStreams(rng, &x, &xf);
  reference::HcParams params;
  const MhcWeights w = RandomSite(rng, (2 + kHc) * kHc, false, &params);
  const MhcParams mp{kHc, kDim, 20, 1e-6f, 1e-6f};
  const reference::HcOptions o{.hc = kHc, .sinkhorn_iters = 20};

  std::vector<BF16> u(static_cast<size_t>(kRows * kDim));
  MhcMixes mix;
  MhcWorkspace ws;
  HcPre(pool, mp, w, x.data(), kRows, u.data(), &mix, &ws);
  std::vector<BF16> f(u.size());
  for (BF16& v : f) v = F32ToBf16(static_cast<float>(rng.Normal()));
  HcPost(pool, mp, mix, f.data(), kRows, x.data());

  for (int64_t r = 0; r < kRows; ++r) {
    std::span<float> xr(xf.data() + r * kHc * kDim, kHc * kDim);
    reference::HcMix ref_mix;
    const std::vector<float> ur = reference::HcPre(xr, params, o, &ref_mix);
    ExpectBitsEqual(u.data() + r * kDim, ur, "u");
    ASSERT_EQ(std::memcmp(mix.post.data() + r * kHc, ref_mix.post.data(), kHc * sizeof(float)), 0);
    ASSERT_EQ(std::memcmp(mix.comb.data() + r * kHc * kHc, ref_mix.comb.data(),
                          kHc * kHc * sizeof(float)), 0);
    std::vector<float> fr(static_cast<size_t>(kDim));
    for (int64_t d = 0; d < kDim; ++d) fr[d] = Bf16ToF32(f[r * kDim + d]);
    reference::HcPost(fr, xr, ref_mix, kHc);
    ExpectBitsEqual(x.data() + r * kHc * kDim, std::vector<float>(xr.begin(), xr.end()), "X'");
  }
}

TEST(V4MhcBatched, HcHeadMatchesTheReferenceBitForBit) {
  ScopedFineSplit split;
  ThreadPool pool(2);
  Rng rng(12);
  std::vector<BF16> x;
  std::vector<float> xf;
  RandomStreams(rng, &x, &xf);
  reference::HcParams params;
  const MhcWeights w = RandomSite(rng, kHc, true, &params);
  const MhcParams mp{kHc, kDim, 20, 1e-6f, 1e-6f};
  std::vector<BF16> h(static_cast<size_t>(kRows * kDim));
  MhcWorkspace ws;
  HcHead(pool, mp, w, x.data(), kRows, h.data(), &ws);
  for (int64_t r = 0; r < kRows; ++r) {
    const std::vector<float> hr = reference::HcHead(
        std::span<const float>(xf.data() + r * kHc * kDim, kHc * kDim), params, {.hc = kHc});
    ExpectBitsEqual(h.data() + r * kDim, hr, "h");
  }
}

// The butterflies run in the reference's order, so the rotation is bit-identical to it, on
// the stack path and on the heap path (n > 1024). Magnitudes spread over 2^±12 make the sums
// cancel, so another addition order would show above the BF16 rounding.
TEST(V4Ops, HadamardMatchesTheReferenceBitForBit) {
  Rng rng(13);
  for (int64_t n : {1, 2, 4, 32, 128, 512, 4096}) {
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<BF16> x(static_cast<size_t>(n));
      std::vector<float> xf(x.size());
      for (int64_t i = 0; i < n; ++i) {
        const int exponent = static_cast<int>(rng.Below(25)) - 12;
        x[i] = F32ToBf16(std::ldexp(static_cast<float>(rng.Normal()), exponent));
        xf[i] = Bf16ToF32(x[i]);
      }
      models::Hadamard(x.data(), n);
      reference::HadamardBf16(xf);
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(x[i].bits, F32ToBf16(xf[i]).bits) << "n " << n << " element " << i;
      }
    }
  }
}

}  // namespace
}  // namespace dsv4::v4
