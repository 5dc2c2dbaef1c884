#include "model/v4/mhc.h"

#include <cmath>

namespace dsv4::v4 {
namespace {

float Sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// μ = (x̄ · fnᵀ) · ρ with ρ = 1/sqrt(mean(x̄²) + eps) over all hc*D values (§5.1 steps 1-2).
void Mixes(const MhcParams& p, const float* fn, int64_t rows, const BF16* x, float* mu) {
  const int64_t n = p.hc * p.dim;
  std::vector<float> xf(static_cast<size_t>(n));
  float sq = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    xf[i] = Bf16ToF32(x[i]);
    sq += xf[i] * xf[i];
  }
  const float rho = 1.0f / std::sqrt(sq / static_cast<float>(n) + p.norm_eps);
  for (int64_t r = 0; r < rows; ++r) {
    float acc = 0.0f;
    for (int64_t i = 0; i < n; ++i) acc += xf[i] * fn[r * n + i];
    mu[r] = acc * rho;
  }
}

}  // namespace

void Sinkhorn(float* m, int64_t hc, int64_t iters, float eps) {
  auto normalize_rows = [&] {
    for (int64_t j = 0; j < hc; ++j) {
      float s = 0.0f;
      for (int64_t k = 0; k < hc; ++k) s += m[j * hc + k];
      for (int64_t k = 0; k < hc; ++k) m[j * hc + k] /= s + eps;
    }
  };
  auto normalize_cols = [&] {
    for (int64_t k = 0; k < hc; ++k) {
      float s = 0.0f;
      for (int64_t j = 0; j < hc; ++j) s += m[j * hc + k];
      for (int64_t j = 0; j < hc; ++j) m[j * hc + k] /= s + eps;
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

void HcPre(const MhcParams& p, const MhcWeights& w, const BF16* x, BF16* u, MhcMix* mix) {
  const int64_t hc = p.hc;
  std::vector<float> mu(static_cast<size_t>((2 + hc) * hc));
  Mixes(p, w.fn, (2 + hc) * hc, x, mu.data());
  std::vector<float> pre(static_cast<size_t>(hc));
  mix->post.resize(static_cast<size_t>(hc));
  mix->comb.resize(static_cast<size_t>(hc * hc));
  for (int64_t j = 0; j < hc; ++j) {
    pre[j] = Sigmoid(mu[j] * w.scale[0] + w.base[j]) + p.hc_eps;
    mix->post[j] = 2.0f * Sigmoid(mu[hc + j] * w.scale[1] + w.base[hc + j]);
  }
  for (int64_t i = 0; i < hc * hc; ++i) {
    mix->comb[i] = mu[2 * hc + i] * w.scale[2] + w.base[2 * hc + i];
  }
  Sinkhorn(mix->comb.data(), hc, p.sinkhorn_iters, p.hc_eps);
  for (int64_t d = 0; d < p.dim; ++d) {
    float acc = 0.0f;
    for (int64_t j = 0; j < hc; ++j) acc += pre[j] * Bf16ToF32(x[j * p.dim + d]);
    u[d] = F32ToBf16(acc);
  }
}

void HcPost(const MhcParams& p, const MhcMix& mix, const BF16* f, BF16* x) {
  const int64_t hc = p.hc;
  std::vector<float> col(static_cast<size_t>(hc));
  for (int64_t d = 0; d < p.dim; ++d) {
    for (int64_t j = 0; j < hc; ++j) col[j] = Bf16ToF32(x[j * p.dim + d]);
    const float fd = Bf16ToF32(f[d]);
    for (int64_t k = 0; k < hc; ++k) {  // the stream mix first, then + post*F (reference order)
      float mixed = 0.0f;
      for (int64_t j = 0; j < hc; ++j) mixed += mix.comb[j * hc + k] * col[j];
      x[k * p.dim + d] = F32ToBf16(mix.post[k] * fd + mixed);
    }
  }
}

void HcHead(const MhcParams& p, const MhcWeights& w, const BF16* x, BF16* h) {
  const int64_t hc = p.hc;
  std::vector<float> nu(static_cast<size_t>(hc)), pre(static_cast<size_t>(hc));
  Mixes(p, w.fn, hc, x, nu.data());
  for (int64_t j = 0; j < hc; ++j) pre[j] = Sigmoid(nu[j] * w.scale[0] + w.base[j]) + p.hc_eps;
  for (int64_t d = 0; d < p.dim; ++d) {
    float acc = 0.0f;
    for (int64_t j = 0; j < hc; ++j) acc += pre[j] * Bf16ToF32(x[j * p.dim + d]);
    h[d] = F32ToBf16(acc);
  }
}

}  // namespace dsv4::v4
