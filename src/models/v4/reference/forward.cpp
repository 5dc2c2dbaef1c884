#include "models/v4/reference/forward.h"

#include <bit>
#include <string>

#include "core/bf16.h"
#include "core/quant.h"
#include "models/v4/reference/block.h"
#include "models/v4/reference/mhc.h"
#include "models/v4/reference/numerics.h"
#include "models/v4/reference/weights.h"

namespace dsv4::v4::reference {
namespace {

Status Unsupported(const std::string& what) {
  return Status::Unimplemented("reference forward: " + what);
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

Status CheckTokens(const checkpoint::ModelConfig& c, std::span<const int32_t> tokens) {
  for (size_t t = 0; t < tokens.size(); ++t) {
    if (tokens[t] < 0 || tokens[t] >= c.vocab_size) {
      return Status::InvalidArgument("token at position " + std::to_string(t) + " has id " +
                                     std::to_string(tokens[t]) + ", expected an id in [0, " +
                                     std::to_string(c.vocab_size) + ")");
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
  DSV4_RETURN_IF_ERROR(CheckTokens(c, tokens));
  const int64_t num_tokens = static_cast<int64_t>(tokens.size());
  const int64_t dim = c.hidden_size, hc = c.hc_mult, vocab = c.vocab_size;
  if (trace != nullptr) trace->layers.assign(static_cast<size_t>(c.num_hidden_layers), {});
  if (num_tokens == 0) return std::vector<float>{};
  const HcOptions o = HcOptionsOf(c);

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
        RunBlock(c, w, LayerPrefix(layer), layer, tokens, o, &streams,
                 trace ? &trace->layers[layer] : nullptr));
  }

  // §2 steps 4-5: HC_head, final RMSNorm, FP32 head for every position.
  return HeadLogits(c, w, "", streams, o);
}

}  // namespace dsv4::v4::reference
