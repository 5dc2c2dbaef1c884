#include "models/v4/reference/mhc.h"

#include <algorithm>
#include <cmath>

#include "core/bf16.h"
#include "core/check.h"
#include "models/v4/reference/numerics.h"
#include "models/v4/reference/weights.h"

namespace dsv4::v4::reference {
namespace {

// Divides every row j by (Σ_k C_jk + eps).
void NormaliseRows(std::span<float> c, int64_t hc, float eps) {
  for (int64_t j = 0; j < hc; ++j) {
    float sum = 0.0f;
    for (int64_t k = 0; k < hc; ++k) sum += c[j * hc + k];
    for (int64_t k = 0; k < hc; ++k) c[j * hc + k] /= sum + eps;
  }
}

// Divides every column k by (Σ_j C_jk + eps).
void NormaliseColumns(std::span<float> c, int64_t hc, float eps) {
  for (int64_t k = 0; k < hc; ++k) {
    float sum = 0.0f;
    for (int64_t j = 0; j < hc; ++j) sum += c[j * hc + k];
    for (int64_t j = 0; j < hc; ++j) c[j * hc + k] /= sum + eps;
  }
}

// mix_i = (x̄ · fn_iᵀ) · ρ with ρ = 1/sqrt(mean(x̄²) + norm_eps) over all hc·D values (§5.1 1-2).
// Both the sum of squares x̄·x̄ and the dots x̄·fn_i are FP32 linear-layer dot products, so they
// use the engine's canonical 8-lane order (DotLanes8).
std::vector<float> Mixes(std::span<const float> x, const HcParams& p, int64_t num_mix,
                         float norm_eps) {
  const int64_t width = static_cast<int64_t>(x.size());
  DSV4_CHECK(static_cast<int64_t>(p.fn.size()) == num_mix * width);
  const float sum_sq = DotLanes8(x.data(), x.data(), x.size());
  const float rho = 1.0f / std::sqrt(sum_sq / static_cast<float>(width) + norm_eps);
  std::vector<float> mix(static_cast<size_t>(num_mix));
  for (int64_t i = 0; i < num_mix; ++i) {
    mix[i] = DotLanes8(x.data(), p.fn.data() + i * width, x.size()) * rho;
  }
  return mix;
}

// bf16(Σ_j weight_j · X_j) with an FP32 sum in ascending j.
std::vector<float> WeightedStreamSum(std::span<const float> x, std::span<const float> weight,
                                     int64_t hc) {
  const int64_t dim = static_cast<int64_t>(x.size()) / hc;
  std::vector<float> u(static_cast<size_t>(dim));
  for (int64_t d = 0; d < dim; ++d) {
    float acc = 0.0f;
    for (int64_t j = 0; j < hc; ++j) acc += weight[j] * x[j * dim + d];
    u[d] = RoundBf16(acc);
  }
  return u;
}

}  // namespace

void Sinkhorn(std::span<float> m, int64_t hc, int64_t iters, float eps, SinkhornOpCounts* counts) {
  DSV4_CHECK(static_cast<int64_t>(m.size()) == hc * hc && iters >= 1);
  SinkhornOpCounts local;
  // Row softmax, then + eps on every entry.
  for (int64_t j = 0; j < hc; ++j) {
    std::span<float> row = m.subspan(j * hc, hc);
    const float max = *std::max_element(row.begin(), row.end());
    float sum = 0.0f;
    for (float& v : row) {
      v = std::exp(v - max);
      sum += v;
    }
    for (float& v : row) v = v / sum + eps;
  }
  ++local.softmax;
  NormaliseColumns(m, hc, eps);
  ++local.col;
  for (int64_t it = 1; it < iters; ++it) {
    NormaliseRows(m, hc, eps);
    ++local.row;
    NormaliseColumns(m, hc, eps);
    ++local.col;
  }
  if (counts != nullptr) *counts = local;
}

Result<HcParams> LoadHcParams(const checkpoint::TensorSource& w, const std::string& prefix, int64_t hc,
                              int64_t dim, bool head) {
  const int64_t num_mix = head ? hc : (2 + hc) * hc;
  HcParams p;
  DSV4_ASSIGN_OR_RETURN(p.fn, LoadFloats(w, prefix + "_fn", DType::kF32, {num_mix, hc * dim}));
  DSV4_ASSIGN_OR_RETURN(p.base, LoadFloats(w, prefix + "_base", DType::kF32, {num_mix}));
  DSV4_ASSIGN_OR_RETURN(p.scale, LoadFloats(w, prefix + "_scale", DType::kF32, {head ? 1 : 3}));
  return p;
}

std::vector<float> HcPre(std::span<const float> x, const HcParams& p, const HcOptions& o,
                         HcMix* mix) {
  const int64_t hc = o.hc;
  const std::vector<float> mu = Mixes(x, p, (2 + hc) * hc, o.norm_eps);
  std::vector<float> pre(static_cast<size_t>(hc));
  mix->post.assign(static_cast<size_t>(hc), 0.0f);
  mix->comb.assign(static_cast<size_t>(hc * hc), 0.0f);
  for (int64_t j = 0; j < hc; ++j) {
    pre[j] = Sigmoid(mu[j] * p.scale[0] + p.base[j]) + o.hc_eps;
    mix->post[j] = 2.0f * Sigmoid(mu[hc + j] * p.scale[1] + p.base[hc + j]);
  }
  for (int64_t i = 0; i < hc * hc; ++i) {
    mix->comb[i] = mu[2 * hc + i] * p.scale[2] + p.base[2 * hc + i];
  }
  Sinkhorn(mix->comb, hc, o.sinkhorn_iters, o.hc_eps);
  return WeightedStreamSum(x, pre, hc);
}

void HcPost(std::span<const float> f, std::span<float> x, const HcMix& mix, int64_t hc) {
  const int64_t dim = static_cast<int64_t>(f.size());
  DSV4_CHECK(static_cast<int64_t>(x.size()) == hc * dim);
  std::vector<float> out(x.size());
  for (int64_t k = 0; k < hc; ++k) {
    for (int64_t d = 0; d < dim; ++d) {
      float mixed = 0.0f;
      for (int64_t j = 0; j < hc; ++j) mixed += mix.comb[j * hc + k] * x[j * dim + d];
      out[k * dim + d] = RoundBf16(mix.post[k] * f[d] + mixed);
    }
  }
  std::copy(out.begin(), out.end(), x.begin());
}

std::vector<float> HcHead(std::span<const float> x, const HcParams& p, const HcOptions& o) {
  const std::vector<float> nu = Mixes(x, p, o.hc, o.norm_eps);
  std::vector<float> pre(static_cast<size_t>(o.hc));
  for (int64_t j = 0; j < o.hc; ++j) pre[j] = Sigmoid(nu[j] * p.scale[0] + p.base[j]) + o.hc_eps;
  return WeightedStreamSum(x, pre, o.hc);
}

}  // namespace dsv4::v4::reference
