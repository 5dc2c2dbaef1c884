#include "models/v4/reference/forward.h"

#include <bit>
#include <string>

#include "core/bf16.h"
#include "core/quant.h"
#include "models/v4/reference/attention.h"
#include "models/v4/reference/mhc.h"
#include "models/v4/reference/moe.h"
#include "models/v4/reference/numerics.h"
#include "models/v4/reference/weights.h"

namespace dsv4::v4::reference {
namespace {

Status Unsupported(const std::string& what) {
  return Status::Unimplemented("reference forward: " + what);
}

// One layer's parameters outside attention and MoE.
struct BlockWeights {
  std::vector<float> attn_norm;  // F32 [D]
  std::vector<float> ffn_norm;   // F32 [D]
  HcParams hc_attn;
  HcParams hc_ffn;
};

Result<BlockWeights> LoadBlock(const checkpoint::ModelConfig& c, const checkpoint::TensorSource& w,
                               int64_t layer) {
  const std::string p = "layers." + std::to_string(layer) + ".";
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

// One Block (§2 step 3) over all positions; streams updated in place. `trace` may be null.
Status RunBlock(const checkpoint::ModelConfig& c, const checkpoint::TensorSource& w, int64_t layer,
                std::span<const int32_t> tokens, const HcOptions& o, std::vector<float>* streams,
                LayerTrace* trace) {
  const int64_t num_tokens = static_cast<int64_t>(tokens.size());
  const int64_t dim = c.hidden_size, width = o.hc * dim;
  const float eps = static_cast<float>(c.rms_norm_eps);
  DSV4_ASSIGN_OR_RETURN(const BlockWeights b, LoadBlock(c, w, layer));
  std::vector<HcMix> mixes;
  {
    DSV4_ASSIGN_OR_RETURN(const AttentionWeights aw, LoadAttention(c, w, layer));
    const std::vector<float> u =
        PreAll(*streams, b.hc_attn, b.attn_norm, o, eps, num_tokens, &mixes);
    const std::vector<float> a =
        AttentionForward(c, aw, u, num_tokens, trace ? &trace->compressed : nullptr);
    for (int64_t t = 0; t < num_tokens; ++t) {
      HcPost(std::span<const float>(a).subspan(t * dim, dim),
             std::span<float>(*streams).subspan(t * width, width), mixes[t], o.hc);
    }
    if (trace != nullptr) trace->attn_out = a;
  }
  DSV4_ASSIGN_OR_RETURN(const MoeWeights mw, LoadMoe(c, w, layer));
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

}  // namespace

Status CheckReferenceSupports(const checkpoint::ModelConfig& c) {
  if (c.arch != checkpoint::Arch::kV4) return Unsupported("only DeepSeek-V4 configs are supported");
  if (c.scoring_func != "sqrtsoftplus") {
    return Unsupported("router scoring_func '" + c.scoring_func + "' (expected sqrtsoftplus)");
  }
  const int64_t rope = c.qk_rope_head_dim;
  if (rope <= 0 || rope % 2 != 0 || c.head_dim <= rope) {
    return Unsupported("qk_rope_head_dim " + std::to_string(rope) + " must be even, positive " +
                       "and below head_dim " + std::to_string(c.head_dim));
  }
  if (c.d_nope() % static_cast<int64_t>(kFp8KvBlock) != 0) {
    return Unsupported("head_dim - qk_rope_head_dim = " + std::to_string(c.d_nope()) +
                       " must be a multiple of 64 (FP8 KV simulation blocks)");
  }
  if (c.o_groups <= 0 || c.num_attention_heads % c.o_groups != 0) {
    return Unsupported("num_attention_heads " + std::to_string(c.num_attention_heads) +
                       " must be a multiple of o_groups " + std::to_string(c.o_groups));
  }
  if (c.hc_mult <= 0 || c.hc_sinkhorn_iters <= 0 || c.sliding_window <= 0) {
    return Unsupported("hc_mult, hc_sinkhorn_iters and sliding_window must be positive");
  }
  if (c.num_experts_per_tok <= 0 || c.num_experts_per_tok > c.n_routed_experts) {
    return Unsupported("num_experts_per_tok must be in [1, n_routed_experts]");
  }
  bool has_csa = false;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    if (c.ratio(l) < 0) return Unsupported("negative compress ratio in layer " + std::to_string(l));
    has_csa = has_csa || c.ratio(l) == 4;
  }
  const int64_t ihd = c.index_head_dim;
  if (has_csa && (ihd < rope || !std::has_single_bit(static_cast<uint64_t>(ihd)) ||
                  ihd % static_cast<int64_t>(kFp4Block) != 0)) {
    return Unsupported("index_head_dim " + std::to_string(ihd) +
                       " must be a power of two, a multiple of 32 and at least the RoPE dims");
  }
  if (c.weight_format == checkpoint::WeightFormat::kFp8) {
    // Every FP8/FP4 linear act-quantises its input in blocks of 128.
    const int64_t inputs[] = {c.hidden_size, c.q_lora_rank, c.o_groups * c.o_lora_rank,
                              c.moe_intermediate_size,
                              c.moe_intermediate_size * c.n_shared_experts};
    for (int64_t k : inputs) {
      if (k % static_cast<int64_t>(kFp8ActBlock) != 0) {
        return Unsupported("FP8 linear input width " + std::to_string(k) +
                           " is not a multiple of 128");
      }
    }
  }
  return Status::Ok();
}

Result<std::vector<float>> Forward(const checkpoint::ModelConfig& c, const checkpoint::TensorSource& w,
                                   std::span<const int32_t> tokens) {
  return Forward(c, w, tokens, nullptr);
}

Result<std::vector<float>> Forward(const checkpoint::ModelConfig& c, const checkpoint::TensorSource& w,
                                   std::span<const int32_t> tokens, ForwardTrace* trace) {
  DSV4_RETURN_IF_ERROR(CheckReferenceSupports(c));
  for (size_t t = 0; t < tokens.size(); ++t) {
    if (tokens[t] < 0 || tokens[t] >= c.vocab_size) {
      return Status::InvalidArgument("token at position " + std::to_string(t) + " has id " +
                                     std::to_string(tokens[t]) + ", expected an id in [0, " +
                                     std::to_string(c.vocab_size) + ")");
    }
  }
  const int64_t num_tokens = static_cast<int64_t>(tokens.size());
  const int64_t dim = c.hidden_size, hc = c.hc_mult, vocab = c.vocab_size;
  if (trace != nullptr) trace->layers.assign(static_cast<size_t>(c.num_hidden_layers), {});
  if (num_tokens == 0) return std::vector<float>{};
  const HcOptions o{.hc = hc,
                    .sinkhorn_iters = c.hc_sinkhorn_iters,
                    .norm_eps = static_cast<float>(c.rms_norm_eps),
                    .hc_eps = static_cast<float>(c.hc_eps)};

  // §2 steps 1-2: the residual state is hc copies of the embedding row. BF16 [T, hc, D].
  std::vector<float> streams;
  streams.reserve(static_cast<size_t>(num_tokens * hc * dim));
  {
    DSV4_ASSIGN_OR_RETURN(const std::vector<float> embed,
                          LoadFloats(w, "embed.weight", DType::kBF16, {vocab, dim}));
    for (int32_t token : tokens) {
      for (int64_t j = 0; j < hc; ++j) {
        streams.insert(streams.end(), embed.begin() + token * dim,
                       embed.begin() + (token + 1) * dim);
      }
    }
  }
  for (int64_t layer = 0; layer < c.num_hidden_layers; ++layer) {
    DSV4_RETURN_IF_ERROR(
        RunBlock(c, w, layer, tokens, o, &streams, trace ? &trace->layers[layer] : nullptr));
  }

  // §2 steps 4-5: HC_head, final RMSNorm, FP32 head for every position.
  DSV4_ASSIGN_OR_RETURN(const HcParams head_hc, LoadHcParams(w, "hc_head", hc, dim, true));
  DSV4_ASSIGN_OR_RETURN(const std::vector<float> norm,
                        LoadFloats(w, "norm.weight", DType::kBF16, {dim}));
  DSV4_ASSIGN_OR_RETURN(const Linear head,
                        LoadF32Linear(w, "head.weight", DType::kBF16, vocab, dim));
  std::vector<float> logits;
  logits.reserve(static_cast<size_t>(num_tokens * vocab));
  for (int64_t t = 0; t < num_tokens; ++t) {
    const std::vector<float> h =
        HcHead(std::span<const float>(streams).subspan(t * hc * dim, hc * dim), head_hc, o);
    const std::vector<float> y = Apply(head, RmsNorm(h, norm, o.norm_eps));
    logits.insert(logits.end(), y.begin(), y.end());
  }
  return logits;
}

}  // namespace dsv4::v4::reference
