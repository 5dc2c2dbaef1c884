#include "models/v4/reference/block.h"

#include "models/v4/reference/attention.h"
#include "models/v4/reference/moe.h"
#include "models/v4/reference/numerics.h"
#include "models/v4/reference/weights.h"

namespace dsv4::v4::reference {
namespace {

// One layer's parameters outside attention and MoE.
struct BlockWeights {
  std::vector<float> attn_norm;  // F32 [D]
  std::vector<float> ffn_norm;   // F32 [D]
  HcParams hc_attn;
  HcParams hc_ffn;
};

Result<BlockWeights> LoadBlock(const checkpoint::ModelConfig& c, const checkpoint::TensorSource& w,
                               const std::string& p) {
  const int64_t dim = c.hidden_size;
  BlockWeights b;
  DSV4_ASSIGN_OR_RETURN(b.attn_norm, LoadFloats(w, p + "attn_norm.weight", DType::kBF16, {dim}));
  DSV4_ASSIGN_OR_RETURN(b.ffn_norm, LoadFloats(w, p + "ffn_norm.weight", DType::kBF16, {dim}));
  DSV4_ASSIGN_OR_RETURN(b.hc_attn, LoadHcParams(w, p + "hc_attn", c.hc_mult, dim, false));
  DSV4_ASSIGN_OR_RETURN(b.hc_ffn, LoadHcParams(w, p + "hc_ffn", c.hc_mult, dim, false));
  return b;
}

// HC_pre + RMSNorm for every position. streams: BF16 [T, hc, D]. Returns BF16 [T, D].
std::vector<float> PreAll(std::span<const float> streams, const HcParams& hc_params,
                          std::span<const float> norm, const HcOptions& o, float eps,
                          int64_t num_tokens, std::vector<HcMix>* mixes) {
  const int64_t dim = static_cast<int64_t>(norm.size()), width = o.hc * dim;
  std::vector<float> u;
  u.reserve(static_cast<size_t>(num_tokens * dim));
  mixes->resize(static_cast<size_t>(num_tokens));
  for (int64_t t = 0; t < num_tokens; ++t) {
    const std::vector<float> ut =
        HcPre(streams.subspan(t * width, width), hc_params, o, &(*mixes)[t]);
    const std::vector<float> normed = RmsNorm(ut, norm, eps);
    u.insert(u.end(), normed.begin(), normed.end());
  }
  return u;
}

}  // namespace

HcOptions HcOptionsOf(const checkpoint::ModelConfig& c) {
  return {.hc = c.hc_mult,
          .sinkhorn_iters = c.hc_sinkhorn_iters,
          .norm_eps = static_cast<float>(c.rms_norm_eps),
          .hc_eps = static_cast<float>(c.hc_eps)};
}

Status RunBlock(const checkpoint::ModelConfig& c, const checkpoint::TensorSource& w,
                const std::string& prefix, int64_t layer, std::span<const int32_t> tokens,
                const HcOptions& o, std::vector<float>* streams, LayerTrace* trace) {
  const int64_t num_tokens = static_cast<int64_t>(tokens.size());
  std::vector<std::vector<int64_t>>* compressed = trace ? &trace->compressed : nullptr;
  const AttentionFn attention = [&](const AttentionWeights& aw, std::span<const float> u) {
    return AttentionForward(c, aw, u, num_tokens, compressed);
  };
  return RunBlockWith(c, w, prefix, layer, tokens, o, attention, streams, trace);
}

Status RunBlockWith(const checkpoint::ModelConfig& c, const checkpoint::TensorSource& w,
                    const std::string& prefix, int64_t layer, std::span<const int32_t> tokens,
                    const HcOptions& o, const AttentionFn& attention, std::vector<float>* streams,
                    LayerTrace* trace) {
  const int64_t num_tokens = static_cast<int64_t>(tokens.size());
  const int64_t dim = c.hidden_size, width = o.hc * dim;
  const float eps = static_cast<float>(c.rms_norm_eps);
  DSV4_ASSIGN_OR_RETURN(const BlockWeights b, LoadBlock(c, w, prefix));
  std::vector<HcMix> mixes;
  {
    DSV4_ASSIGN_OR_RETURN(const AttentionWeights aw, LoadAttention(c, w, prefix, layer));
    const std::vector<float> u =
        PreAll(*streams, b.hc_attn, b.attn_norm, o, eps, num_tokens, &mixes);
    const std::vector<float> a = attention(aw, u);
    for (int64_t t = 0; t < num_tokens; ++t) {
      HcPost(std::span<const float>(a).subspan(t * dim, dim),
             std::span<float>(*streams).subspan(t * width, width), mixes[t], o.hc);
    }
    if (trace != nullptr) trace->attn_out = a;
  }
  DSV4_ASSIGN_OR_RETURN(const MoeWeights mw, LoadMoe(c, w, prefix, layer));
  const std::vector<float> u = PreAll(*streams, b.hc_ffn, b.ffn_norm, o, eps, num_tokens, &mixes);
  if (trace != nullptr) trace->ffn_in = u;
  for (int64_t t = 0; t < num_tokens; ++t) {
    Routing r;
    const std::vector<float> f =
        MoeForward(c, mw, std::span<const float>(u).subspan(t * dim, dim), tokens[t], &r);
    HcPost(f, std::span<float>(*streams).subspan(t * width, width), mixes[t], o.hc);
    if (trace != nullptr) {
      trace->experts.push_back(r.experts);
      trace->expert_weights.push_back(r.weights);
      trace->ffn_out.insert(trace->ffn_out.end(), f.begin(), f.end());
    }
  }
  if (trace != nullptr) trace->streams = *streams;
  return Status::Ok();
}

Result<std::vector<float>> HeadLogits(const checkpoint::ModelConfig& c,
                                      const checkpoint::TensorSource& w, const std::string& prefix,
                                      std::span<const float> streams, const HcOptions& o,
                                      std::vector<float>* normed) {
  const int64_t dim = c.hidden_size, hc = c.hc_mult, vocab = c.vocab_size;
  const int64_t num_tokens = static_cast<int64_t>(streams.size()) / (hc * dim);
  DSV4_ASSIGN_OR_RETURN(const HcParams head_hc, LoadHcParams(w, prefix + "hc_head", hc, dim, true));
  DSV4_ASSIGN_OR_RETURN(const std::vector<float> norm,
                        LoadFloats(w, prefix + "norm.weight", DType::kBF16, {dim}));
  DSV4_ASSIGN_OR_RETURN(const Linear head,
                        LoadF32Linear(w, "head.weight", DType::kBF16, vocab, dim));
  std::vector<float> logits;
  logits.reserve(static_cast<size_t>(num_tokens * vocab));
  if (normed != nullptr) normed->clear();
  for (int64_t t = 0; t < num_tokens; ++t) {
    const std::vector<float> h = HcHead(streams.subspan(t * hc * dim, hc * dim), head_hc, o);
    const std::vector<float> hn = RmsNorm(h, norm, o.norm_eps);
    if (normed != nullptr) normed->insert(normed->end(), hn.begin(), hn.end());
    const std::vector<float> y = Apply(head, hn);
    logits.insert(logits.end(), y.begin(), y.end());
  }
  return logits;
}

}  // namespace dsv4::v4::reference
