#include "models/v32/model.h"

#include <cstring>

#include "kernels/cpu/linear.h"
#include "models/common/norm.h"
#include "models/common/sequence_check.h"
#include "models/v32/moe.h"
#include "models/v32/ops.h"

namespace dsv4::v32 {

Result<std::unique_ptr<Model>> Model::Create(const checkpoint::ModelConfig& c,
                                             const checkpoint::TensorSource& source,
                                             const checkpoint::LoadOptions& options) {
  DSV4_RETURN_IF_ERROR(checkpoint::ValidateModelConfig(c, source.label()));
  std::unique_ptr<Model> m(new Model());
  m->config_ = c;
  DSV4_ASSIGN_OR_RETURN(m->weights_, LoadWeights(m->config_, source, options));
  m->constants_ = MakeMlaConstants(c);
  return m;
}

Status Model::Forward(ThreadPool& pool, kv::V32SequenceCache& cache,
                      std::span<const int32_t> tokens, LogitsMode mode, std::vector<float>* logits,
                      ForwardTrace* trace) const {
  const checkpoint::ModelConfig& c = config_;
  const int64_t n = static_cast<int64_t>(tokens.size()), D = c.hidden_size;
  const int64_t pos0 = cache.num_tokens();
  DSV4_RETURN_IF_ERROR(models::CheckSequence(c, pos0, tokens));
  DSV4_RETURN_IF_ERROR(cache.CheckAppend(n));
  DSV4_RETURN_IF_ERROR(cache.Reserve(pos0 + n));
  if (trace != nullptr) trace->layers.assign(weights_->layers.size(), {});
  if (n == 0) {
    if (logits) logits->clear();
    return Status::Ok();
  }
  const ModelWeights& mw = *weights_;
  const float eps = static_cast<float>(c.rms_norm_eps);
  // Residual stream h: BF16 [n, D], starting as the embedding rows. u: the normed sublayer
  // input; f: the sublayer output, added to h by the next AddRmsNorm.
  std::vector<BF16> h(static_cast<size_t>(n * D)), u(h.size()), f(h.size());
  kernels::Workspace kernel_ws;  // the kernels' scratch, reused by every layer
  for (int64_t t = 0; t < n; ++t) {
    std::memcpy(h.data() + t * D, mw.embed + tokens[t] * D, D * sizeof(BF16));
    models::RmsNorm(h.data() + t * D, mw.layers[0].input_norm, D, eps, u.data() + t * D);
  }
  for (const LayerWeights& lw : mw.layers) {
    if (lw.layer > 0) {
      for (int64_t t = 0; t < n; ++t) {
        AddRmsNorm(f.data() + t * D, h.data() + t * D, lw.input_norm, D, eps, u.data() + t * D);
      }
    }
    ForwardTrace::Layer* lt = trace != nullptr ? &trace->layers[lw.layer] : nullptr;
    AttentionForward(pool, c, lw, constants_, cache, pos0, u.data(), n, f.data(), &kernel_ws,
                     lt != nullptr ? &lt->selected : nullptr);
    for (int64_t t = 0; t < n; ++t) {
      AddRmsNorm(f.data() + t * D, h.data() + t * D, lw.post_attn_norm, D, eps, u.data() + t * D);
    }
    if (lw.dense) {
      DenseFfnForward(pool, lw.ffn, u.data(), n, f.data(), &kernel_ws);
    } else {
      MoeForward(pool, c, lw, u.data(), n, f.data(), &kernel_ws,
                 lt != nullptr ? &lt->experts : nullptr);
    }
  }
  cache.set_num_tokens(pos0 + n);
  if (mode == LogitsMode::kNone || logits == nullptr) return Status::Ok();

  const int64_t first = mode == LogitsMode::kLast ? n - 1 : 0;
  const int64_t rows = n - first;
  std::vector<BF16> hn(static_cast<size_t>(rows * D));
  for (int64_t t = first; t < n; ++t) {
    AddRmsNorm(f.data() + t * D, h.data() + t * D, mw.norm, D, eps, hn.data() + (t - first) * D);
  }
  logits->resize(static_cast<size_t>(rows * c.vocab_size));
  kernels::LinearBf16InF32(pool, mw.head, hn.data(), rows, logits->data(), &kernel_ws);
  return Status::Ok();
}

Status Model::ForwardBatch(ThreadPool& pool, std::span<const BatchItem> batch) const {
  for (const BatchItem& b : batch) {
    const int64_t pos0 = b.cache->num_tokens();
    DSV4_RETURN_IF_ERROR(models::CheckSequence(config_, pos0, b.tokens));
    DSV4_RETURN_IF_ERROR(b.cache->CheckAppend(static_cast<int64_t>(b.tokens.size())));
    DSV4_RETURN_IF_ERROR(b.cache->Reserve(pos0 + static_cast<int64_t>(b.tokens.size())));
  }
  for (const BatchItem& b : batch) {
    DSV4_RETURN_IF_ERROR(Forward(pool, *b.cache, b.tokens, b.mode, b.logits));
  }
  return Status::Ok();
}

}  // namespace dsv4::v32
