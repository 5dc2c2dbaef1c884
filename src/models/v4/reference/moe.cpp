#include "models/v4/reference/moe.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "core/bf16.h"
#include "core/check.h"

namespace dsv4::v4::reference {
namespace {

Result<ExpertWeights> LoadExpert(const checkpoint::ModelConfig& c, const checkpoint::TensorSource& w,
                                 const std::string& prefix, int64_t inter, bool routed) {
  auto load = routed ? LoadExpertLinear : LoadDenseLinear;
  const int64_t dim = c.hidden_size;
  ExpertWeights e;
  DSV4_ASSIGN_OR_RETURN(e.w1, load(c, w, prefix + "w1", inter, dim));
  DSV4_ASSIGN_OR_RETURN(e.w3, load(c, w, prefix + "w3", inter, dim));
  DSV4_ASSIGN_OR_RETURN(e.w2, load(c, w, prefix + "w2", dim, inter));
  return e;
}

// PyTorch's F.softplus with beta 1, threshold 20.
float Softplus(float x) { return x > 20.0f ? x : std::log1p(std::exp(x)); }

}  // namespace

Result<MoeWeights> LoadMoe(const checkpoint::ModelConfig& c, const checkpoint::TensorSource& w,
                           const std::string& prefix, int64_t layer) {
  const std::string p = prefix + "ffn.";
  const int64_t dim = c.hidden_size, num_experts = c.n_routed_experts;
  const int64_t k = c.num_experts_per_tok, inter = c.moe_intermediate_size;
  MoeWeights mw;
  mw.hash = c.is_hash_layer(layer);
  DSV4_ASSIGN_OR_RETURN(mw.gate,
                        LoadF32Linear(w, p + "gate.weight", DType::kBF16, num_experts, dim));
  if (mw.hash) {
    DSV4_ASSIGN_OR_RETURN(mw.tid2eid, LoadI64(w, p + "gate.tid2eid", {c.vocab_size, k}));
    for (size_t i = 0; i < mw.tid2eid.size(); ++i) {
      const int64_t e = mw.tid2eid[i];
      if (e < 0 || e >= num_experts) {
        return Status::InvalidArgument(
            w.label() + ": " + p + "gate.tid2eid[" + std::to_string(i / k) + "][" +
            std::to_string(i % k) + "] = " + std::to_string(e) + ", expected an expert id in [0, " +
            std::to_string(num_experts) + ")");
      }
    }
  } else {
    DSV4_ASSIGN_OR_RETURN(mw.bias, LoadFloats(w, p + "gate.bias", DType::kF32, {num_experts}));
  }
  for (int64_t e = 0; e < num_experts; ++e) {
    DSV4_ASSIGN_OR_RETURN(
        ExpertWeights ew,
        LoadExpert(c, w, p + "experts." + std::to_string(e) + ".", inter, /*routed=*/true));
    mw.experts.push_back(std::move(ew));
  }
  mw.has_shared = c.n_shared_experts > 0;
  if (mw.has_shared) {
    DSV4_ASSIGN_OR_RETURN(mw.shared, LoadExpert(c, w, p + "shared_experts.",
                                                inter * c.n_shared_experts, /*routed=*/false));
  }
  return mw;
}

Routing Route(const checkpoint::ModelConfig& c, const MoeWeights& mw, std::span<const float> x,
              int32_t token) {
  const int64_t k = c.num_experts_per_tok;
  const std::vector<float> logits = Apply(mw.gate, x);
  std::vector<float> sigma(logits.size());
  for (size_t e = 0; e < logits.size(); ++e) sigma[e] = std::sqrt(Softplus(logits[e]));
  Routing r;
  if (mw.hash) {
    r.experts.assign(mw.tid2eid.begin() + token * k, mw.tid2eid.begin() + (token + 1) * k);
  } else {
    std::vector<float> biased(sigma.size());
    for (size_t e = 0; e < sigma.size(); ++e) biased[e] = sigma[e] + mw.bias[e];
    std::vector<int64_t> order(sigma.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return biased[a] > biased[b]; });
    r.experts.assign(order.begin(), order.begin() + k);
  }
  float sum = 0.0f;
  for (int64_t e : r.experts) sum += sigma[e];
  const float route_scale = static_cast<float>(c.routed_scaling_factor);
  for (int64_t e : r.experts) r.weights.push_back(sigma[e] / sum * route_scale);
  return r;
}

std::vector<float> ExpertForward(const ExpertWeights& e, std::span<const float> x, float weight,
                                 float limit) {
  std::vector<float> a = Apply(e.w1, x);
  const std::vector<float> b = Apply(e.w3, x);
  std::vector<float> h(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    float gate = a[i], up = b[i];
    if (limit > 0.0f) {
      up = std::clamp(up, -limit, limit);
      gate = std::min(gate, limit);
    }
    const float silu = gate / (1.0f + std::exp(-gate));
    h[i] = RoundBf16(weight * (silu * up));
  }
  return Apply(e.w2, h);
}

std::vector<float> MoeForward(const checkpoint::ModelConfig& c, const MoeWeights& mw,
                              std::span<const float> x, int32_t token, Routing* routing) {
  const Routing r = Route(c, mw, x, token);
  const float limit = static_cast<float>(c.swiglu_limit);
  std::vector<float> acc(x.size(), 0.0f);
  for (int64_t e = 0; e < static_cast<int64_t>(mw.experts.size()); ++e) {
    for (size_t j = 0; j < r.experts.size(); ++j) {
      if (r.experts[j] != e) continue;
      const std::vector<float> y = ExpertForward(mw.experts[e], x, r.weights[j], limit);
      for (size_t d = 0; d < acc.size(); ++d) acc[d] += y[d];
    }
  }
  if (mw.has_shared) {
    const std::vector<float> y = ExpertForward(mw.shared, x, 1.0f, limit);
    for (size_t d = 0; d < acc.size(); ++d) acc[d] += y[d];
  }
  for (float& v : acc) v = RoundBf16(v);
  if (routing != nullptr) *routing = r;
  return acc;
}

}  // namespace dsv4::v4::reference
