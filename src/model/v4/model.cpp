#include "model/v4/model.h"

#include <cstring>
#include <string>

#include "kernels/cpu/linear.h"
#include "model/v4/attention.h"
#include "model/v4/mhc.h"
#include "model/v4/moe.h"
#include "model/v4/ops.h"

namespace dsv4::v4 {

Result<std::unique_ptr<Model>> Model::Create(const model::ModelConfig& c,
                                             const model::TensorSource& source) {
  DSV4_RETURN_IF_ERROR(model::ValidateModelConfig(c, source.label()));
  std::unique_ptr<Model> m(new Model());
  m->config_ = c;
  DSV4_ASSIGN_OR_RETURN(m->weights_, LoadWeights(m->config_, source));
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) m->rope_.push_back(RopeTable::ForLayer(c, i));
  return m;
}

Status Model::Forward(ThreadPool& pool, kv::V4SequenceCache& cache,
                      std::span<const int32_t> tokens, LogitsMode mode,
                      std::vector<float>* logits) const {
  const model::ModelConfig& c = config_;
  const int64_t n = static_cast<int64_t>(tokens.size()), D = c.hidden_size, hc = c.hc_mult;
  const int64_t pos0 = cache.num_tokens();
  for (int64_t t = 0; t < n; ++t) {
    if (tokens[t] < 0 || tokens[t] >= c.vocab_size) {
      return Status::InvalidArgument("token " + std::to_string(tokens[t]) + " at position " +
                                     std::to_string(pos0 + t) + " is outside the vocabulary [0, " +
                                     std::to_string(c.vocab_size) + ")");
    }
  }
  if (pos0 + n > c.max_position_embeddings) {
    return Status::OutOfRange("sequence of " + std::to_string(pos0 + n) +
                              " tokens exceeds max_position_embeddings " +
                              std::to_string(c.max_position_embeddings));
  }
  if (n == 0) {
    if (logits) logits->clear();
    return Status::Ok();
  }
  DSV4_RETURN_IF_ERROR(cache.Reserve(pos0 + n));
  const ModelWeights& mw = *weights_;
  // Residual streams X: BF16 [n, hc, D], each a copy of the embedding (spec §2 step 2).
  std::vector<BF16> x(static_cast<size_t>(n * hc * D));
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t j = 0; j < hc; ++j) {
      std::memcpy(x.data() + (t * hc + j) * D, mw.embed + tokens[t] * D, D * sizeof(BF16));
    }
  }
  const MhcParams mp{hc, D, c.hc_sinkhorn_iters, static_cast<float>(c.hc_eps),
                     static_cast<float>(c.rms_norm_eps)};
  const float eps = static_cast<float>(c.rms_norm_eps);
  std::vector<BF16> u(static_cast<size_t>(n * D)), f(static_cast<size_t>(n * D));
  std::vector<MhcMix> mix(static_cast<size_t>(n));
  for (const LayerWeights& lw : mw.layers) {
    for (int64_t t = 0; t < n; ++t) {
      HcPre(mp, lw.hc_attn, x.data() + t * hc * D, u.data() + t * D, &mix[t]);
      RmsNorm(u.data() + t * D, lw.attn_norm, D, eps, u.data() + t * D);
    }
    AttentionForward(pool, c, lw, rope_[lw.layer], cache, pos0, u.data(), n, f.data());
    for (int64_t t = 0; t < n; ++t) HcPost(mp, mix[t], f.data() + t * D, x.data() + t * hc * D);
    for (int64_t t = 0; t < n; ++t) {
      HcPre(mp, lw.hc_ffn, x.data() + t * hc * D, u.data() + t * D, &mix[t]);
      RmsNorm(u.data() + t * D, lw.ffn_norm, D, eps, u.data() + t * D);
    }
    MoeForward(pool, c, lw, tokens.data(), u.data(), n, f.data());
    for (int64_t t = 0; t < n; ++t) HcPost(mp, mix[t], f.data() + t * D, x.data() + t * hc * D);
  }
  cache.set_num_tokens(pos0 + n);
  if (mode == LogitsMode::kNone || logits == nullptr) return Status::Ok();

  const int64_t first = mode == LogitsMode::kLast ? n - 1 : 0;
  const int64_t rows = n - first;
  std::vector<BF16> h(static_cast<size_t>(rows * D));
  for (int64_t t = first; t < n; ++t) {
    BF16* hr = h.data() + (t - first) * D;
    HcHead(mp, mw.hc_head, x.data() + t * hc * D, hr);
    RmsNorm(hr, mw.norm, D, eps, hr);
  }
  logits->resize(static_cast<size_t>(rows * c.vocab_size));
  kernels::LinearBf16InF32(pool, mw.head, h.data(), rows, logits->data());
  return Status::Ok();
}

}  // namespace dsv4::v4
