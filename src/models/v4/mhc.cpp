#include "models/v4/mhc.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "core/check.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/parallel.h"

namespace dsv4::v4 {
namespace {

// Streams per token the stack buffers below allow (the spec's hc_mult is 4).
constexpr int64_t kMaxHc = 8;
// Rows per mix-projection block: bounds the FP32 copy of the streams (hc*D floats a row) for
// any chunk length. Block boundaries do not change any row's bits.
constexpr int64_t kRowBlock = 64;
// Columns per stack accumulator of the per-row stream sums (the loops over it vectorise).
constexpr int64_t kColBlock = 64;

float Sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// u = bf16(Σ_j weight_j · X_j), FP32 sums from +0 in ascending j. xf FP32 [hc, dim] (BF16
// values); u BF16 [dim].
void WeightedStreamSum(const float* xf, const float* weight, int64_t hc, int64_t dim, BF16* u) {
  for (int64_t d0 = 0; d0 < dim; d0 += kColBlock) {
    const int64_t len = std::min(kColBlock, dim - d0);
    float acc[kColBlock];
    std::fill_n(acc, len, 0.0f);
    for (int64_t j = 0; j < hc; ++j) {
      const float wj = weight[j];
      const float* xj = xf + j * dim + d0;
      for (int64_t i = 0; i < len; ++i) acc[i] += wj * xj[i];
    }
    for (int64_t i = 0; i < len; ++i) u[d0 + i] = F32ToBf16(acc[i]);
  }
}

// §5.1 steps 1-2 for every row of X BF16 [rows, hc, D], a block of rows at a time: the
// streams promoted to FP32, ρ = 1/sqrt(mean(x̄²) + eps) with the sum of squares in the
// canonical 8-lane order (kernels::Dot8), and μ = x̄·fnᵀ in one LinearF32 GEMM (the same
// order per output); then finish(row, xf_row, mu_row) with mu_row = μ·ρ, FP32 [fn.out],
// which finish may overwrite. finish runs in parallel over rows.
template <typename Finish>
void ForEachMixedRow(ThreadPool& pool, const MhcParams& p, const LinearWeight& fn, const BF16* x,
                     int64_t rows, MhcWorkspace* ws, const Finish& finish) {
  const int64_t width = p.hc * p.dim, mix = fn.out;
  DSV4_CHECK(fn.kind == kernels::LinearKind::kF32 && fn.in == width);
  const int64_t block = std::min(rows, kRowBlock);
  ws->xf.resize(static_cast<size_t>(block * width));
  ws->rho.resize(static_cast<size_t>(block));
  ws->mu.resize(static_cast<size_t>(block * mix));
  float* xf = ws->xf.data();
  float* rho = ws->rho.data();
  float* mu = ws->mu.data();
  for (int64_t r0 = 0; r0 < rows; r0 += block) {
    const int64_t nb = std::min(block, rows - r0);
    auto promote = [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const BF16* xr = x + (r0 + b) * width;
        float* xfr = xf + b * width;
        for (int64_t i = 0; i < width; ++i) xfr[i] = Bf16ToF32(xr[i]);
        const float sq = kernels::Dot8(xfr, xfr, width);
        rho[b] = 1.0f / std::sqrt(sq / static_cast<float>(width) + p.norm_eps);
      }
    };
    pool.ParallelFor(nb, kernels::GrainForWork(2 * width), promote);
    kernels::LinearF32(pool, fn, xf, nb, mu, &ws->kernels);
    auto scale_and_finish = [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        float* mur = mu + b * mix;
        for (int64_t i = 0; i < mix; ++i) mur[i] *= rho[b];
        finish(r0 + b, xf + b * width, mur);
      }
    };
    // Per row: the stream sum (hc*D), Sinkhorn (~100 operations an iteration), the rest.
    const int64_t work = 2 * width + 100 * p.sinkhorn_iters;
    pool.ParallelFor(nb, kernels::GrainForWork(work), scale_and_finish);
  }
}

}  // namespace

void Sinkhorn(float* m, int64_t hc, int64_t iters, float eps) {
  DSV4_CHECK(hc <= kMaxHc);
  // Each sum ascends from +0 over its index, as in the reference; the loops run over the
  // other index so they vectorise, which does not change any element's arithmetic.
  auto normalize_rows = [&] {
    float den[kMaxHc];
    for (int64_t j = 0; j < hc; ++j) {
      float s = 0.0f;
      for (int64_t k = 0; k < hc; ++k) s += m[j * hc + k];
      den[j] = s + eps;
    }
    for (int64_t j = 0; j < hc; ++j) {
      for (int64_t k = 0; k < hc; ++k) m[j * hc + k] /= den[j];
    }
  };
  auto normalize_cols = [&] {
    float den[kMaxHc] = {};
    for (int64_t j = 0; j < hc; ++j) {
      for (int64_t k = 0; k < hc; ++k) den[k] += m[j * hc + k];
    }
    for (int64_t k = 0; k < hc; ++k) den[k] += eps;
    for (int64_t j = 0; j < hc; ++j) {
      for (int64_t k = 0; k < hc; ++k) m[j * hc + k] /= den[k];
    }
  };
  for (int64_t j = 0; j < hc; ++j) {  // row softmax, then + eps on every entry
    float mx = m[j * hc];
    for (int64_t k = 1; k < hc; ++k) mx = std::max(mx, m[j * hc + k]);
    float s = 0.0f;
    for (int64_t k = 0; k < hc; ++k) s += (m[j * hc + k] = std::exp(m[j * hc + k] - mx));
    for (int64_t k = 0; k < hc; ++k) m[j * hc + k] = m[j * hc + k] / s + eps;
  }
  normalize_cols();
  for (int64_t it = 1; it < iters; ++it) {
    normalize_rows();
    normalize_cols();
  }
}

void HcPre(ThreadPool& pool, const MhcParams& p, const MhcWeights& w, const BF16* x,
           int64_t rows, BF16* u, MhcMixes* mix, MhcWorkspace* ws) {
  const int64_t hc = p.hc;
  DSV4_CHECK(hc <= kMaxHc && w.fn.out == (2 + hc) * hc);
  mix->post.resize(static_cast<size_t>(rows * hc));
  mix->comb.resize(static_cast<size_t>(rows * hc * hc));
  ForEachMixedRow(pool, p, w.fn, x, rows, ws, [&](int64_t r, const float* xf, float* mu) {
    float pre[kMaxHc];
    float* post = mix->post.data() + r * hc;
    float* comb = mix->comb.data() + r * hc * hc;
    for (int64_t j = 0; j < hc; ++j) {
      pre[j] = Sigmoid(mu[j] * w.scale[0] + w.base[j]) + p.hc_eps;
      post[j] = 2.0f * Sigmoid(mu[hc + j] * w.scale[1] + w.base[hc + j]);
    }
    for (int64_t i = 0; i < hc * hc; ++i) {
      comb[i] = mu[2 * hc + i] * w.scale[2] + w.base[2 * hc + i];
    }
    Sinkhorn(comb, hc, p.sinkhorn_iters, p.hc_eps);
    WeightedStreamSum(xf, pre, hc, p.dim, u + r * p.dim);
  });
}

void HcPost(ThreadPool& pool, const MhcParams& p, const MhcMixes& mix, const BF16* f,
            int64_t rows, BF16* x) {
  const int64_t hc = p.hc, dim = p.dim;
  DSV4_CHECK(hc <= kMaxHc);
  auto post_rows = [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* post = mix.post.data() + r * hc;
      const float* comb = mix.comb.data() + r * hc * hc;
      BF16* xr = x + r * hc * dim;
      for (int64_t d0 = 0; d0 < dim; d0 += kColBlock) {
        const int64_t len = std::min(kColBlock, dim - d0);
        // The old streams of these columns first: the outputs overwrite them.
        float old[kMaxHc][kColBlock], fd[kColBlock];
        for (int64_t j = 0; j < hc; ++j) {
          for (int64_t i = 0; i < len; ++i) old[j][i] = Bf16ToF32(xr[j * dim + d0 + i]);
        }
        for (int64_t i = 0; i < len; ++i) fd[i] = Bf16ToF32(f[r * dim + d0 + i]);
        for (int64_t k = 0; k < hc; ++k) {
          // The stream mix from +0 in ascending j first, then + post*F (reference order).
          float mixed[kColBlock];
          std::fill_n(mixed, len, 0.0f);
          for (int64_t j = 0; j < hc; ++j) {
            const float c = comb[j * hc + k];
            for (int64_t i = 0; i < len; ++i) mixed[i] += c * old[j][i];
          }
          for (int64_t i = 0; i < len; ++i) {
            xr[k * dim + d0 + i] = F32ToBf16(post[k] * fd[i] + mixed[i]);
          }
        }
      }
    }
  };
  pool.ParallelFor(rows, kernels::GrainForWork(2 * hc * hc * dim), post_rows);
}

void HcHead(ThreadPool& pool, const MhcParams& p, const MhcWeights& w, const BF16* x,
            int64_t rows, BF16* h, MhcWorkspace* ws) {
  const int64_t hc = p.hc;
  DSV4_CHECK(hc <= kMaxHc && w.fn.out == hc);
  ForEachMixedRow(pool, p, w.fn, x, rows, ws, [&](int64_t r, const float* xf, float* nu) {
    float pre[kMaxHc];
    for (int64_t j = 0; j < hc; ++j) pre[j] = Sigmoid(nu[j] * w.scale[0] + w.base[j]) + p.hc_eps;
    WeightedStreamSum(xf, pre, hc, p.dim, h + r * p.dim);
  });
}

}  // namespace dsv4::v4
