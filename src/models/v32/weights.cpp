#include "models/v32/weights.h"

#include <span>
#include <string>
#include <vector>

#include "checkpoint/checkpoint_layout.h"
#include "models/common/linear_loader.h"

namespace dsv4::v32 {
namespace {

using ::dsv4::DType;
using checkpoint::ModelConfig;
using checkpoint::TensorSource;
using models::LinearFormat;
using models::LinearLoader;

// The formats a linear may be stored in (spec §14.1b): FP8 with F32 weight_scale_inv or BF16,
// read per tensor by the loader (a BF16 MTP eh_proj or indexer wk in an FP8 checkpoint).
std::vector<LinearFormat> DenseFormats(const ModelConfig& c) {
  return checkpoint::AcceptedLinearFormats(c, checkpoint::WeightKind::kDenseLinear);
}

Status LoadIndexer(LinearLoader& l, const ModelConfig& c, const std::string& p,
                   IndexerWeights& w) {
  const int64_t D = c.hidden_size, nI = c.index_n_heads, dI = c.index_head_dim;
  const std::vector<LinearFormat> dense = DenseFormats(c);
  DSV4_ASSIGN_OR_RETURN(w.wq_b, l.Linear(p + "wq_b", dense, nI * dI, c.q_lora_rank));
  DSV4_ASSIGN_OR_RETURN(w.wk, l.Linear(p + "wk", dense, dI, D));
  DSV4_ASSIGN_OR_RETURN(w.k_norm_w, l.F32(p + "k_norm.weight", DType::kBF16, {dI}));
  DSV4_ASSIGN_OR_RETURN(w.k_norm_b, l.F32(p + "k_norm.bias", DType::kBF16, {dI}));
  DSV4_ASSIGN_OR_RETURN(w.weights_proj, l.PromotedF32(p + "weights_proj.weight", nI, D));
  return Status::Ok();
}

Status LoadAttention(LinearLoader& l, const ModelConfig& c, const std::string& p,
                     AttentionWeights& w) {
  const int64_t D = c.hidden_size, H = c.num_attention_heads, Q = c.q_lora_rank;
  const int64_t nope = c.qk_nope_head_dim, rope = c.qk_rope_head_dim, v = c.v_head_dim;
  const int64_t lat = c.kv_lora_rank;
  const std::vector<LinearFormat> dense = DenseFormats(c);
  DSV4_ASSIGN_OR_RETURN(w.q_a, l.Linear(p + "q_a_proj", dense, Q, D));
  DSV4_ASSIGN_OR_RETURN(w.q_a_norm, l.F32(p + "q_a_layernorm.weight", DType::kBF16, {Q}));
  DSV4_ASSIGN_OR_RETURN(w.q_b, l.Linear(p + "q_b_proj", dense, H * (nope + rope), Q));
  DSV4_ASSIGN_OR_RETURN(w.kv_a, l.Linear(p + "kv_a_proj_with_mqa", dense, lat + rope, D));
  DSV4_ASSIGN_OR_RETURN(w.kv_a_norm, l.F32(p + "kv_a_layernorm.weight", DType::kBF16, {lat}));
  DSV4_ASSIGN_OR_RETURN(w.o_proj, l.Linear(p + "o_proj", dense, D, H * v));
  // kv_b_proj rows of head h: [nope rows of W_UK,h | v rows of W_UV,h], each [.., kv_lora].
  DSV4_ASSIGN_OR_RETURN(const BF16* kvb,
                        l.DequantizedBf16(p + "kv_b_proj", dense, H * (nope + v), lat));
  BF16* uk_t = l.arena().Alloc<BF16>(static_cast<size_t>(H * lat * nope));
  for (int64_t h = 0; h < H; ++h) {
    const BF16* uk = kvb + h * (nope + v) * lat;
    BF16* t = uk_t + h * lat * nope;
    for (int64_t d = 0; d < nope; ++d) {
      for (int64_t k = 0; k < lat; ++k) t[k * nope + d] = uk[d * lat + k];
    }
    w.uk_t.push_back({kernels::LinearKind::kBf16, lat, nope, nullptr, nullptr, t});
    w.uv.push_back({kernels::LinearKind::kBf16, v, lat, nullptr, nullptr, uk + nope * lat});
  }
  return LoadIndexer(l, c, p + "indexer.", w.indexer);
}

Result<FfnWeights> LoadFfn(LinearLoader& l, const std::string& p,
                           std::span<const LinearFormat> dense, int64_t inter, int64_t D) {
  FfnWeights f;
  DSV4_ASSIGN_OR_RETURN(f.gate, l.Linear(p + "gate_proj", dense, inter, D));
  DSV4_ASSIGN_OR_RETURN(f.up, l.Linear(p + "up_proj", dense, inter, D));
  DSV4_ASSIGN_OR_RETURN(f.down, l.Linear(p + "down_proj", dense, D, inter));
  return f;
}

Status LoadMlp(LinearLoader& l, const ModelConfig& c, const std::string& p, LayerWeights& w) {
  const int64_t D = c.hidden_size, E = c.n_routed_experts, I = c.moe_intermediate_size;
  const std::vector<LinearFormat> dense = DenseFormats(c);
  if (w.dense) {
    DSV4_ASSIGN_OR_RETURN(w.ffn, LoadFfn(l, p, dense, c.intermediate_size, D));
    return Status::Ok();
  }
  DSV4_ASSIGN_OR_RETURN(w.router, l.PromotedF32(p + "gate.weight", E, D));
  DSV4_ASSIGN_OR_RETURN(w.router_bias, l.F32(p + "gate.e_score_correction_bias", DType::kF32, {E}));
  w.experts.resize(static_cast<size_t>(E));
  for (int64_t e = 0; e < E; ++e) {
    // Another rank's expert (expert parallelism): left empty, its tensors never read.
    if (!l.options().LoadsExpert(e)) continue;
    DSV4_ASSIGN_OR_RETURN(w.experts[e],
                          LoadFfn(l, p + "experts." + std::to_string(e) + ".", dense, I, D));
  }
  w.has_shared = c.n_shared_experts > 0;
  if (w.has_shared) {
    DSV4_ASSIGN_OR_RETURN(w.shared,
                          LoadFfn(l, p + "shared_experts.", dense, I * c.n_shared_experts, D));
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<ModelWeights>> LoadWeights(const ModelConfig& c, const TensorSource& src,
                                                  const checkpoint::LoadOptions& options) {
  if (c.arch != checkpoint::Arch::kV32) {
    return Status::InvalidArgument(src.label() + ": not a DeepSeek-V3.2 checkpoint");
  }
  auto mw = std::make_unique<ModelWeights>();
  LinearLoader l(src, mw->arena, options);
  const int64_t D = c.hidden_size, V = c.vocab_size;
  DSV4_ASSIGN_OR_RETURN(mw->embed, l.View<BF16>("model.embed_tokens.weight", DType::kBF16, {V, D}));
  DSV4_ASSIGN_OR_RETURN(mw->head, l.PromotedF32("lm_head.weight", V, D));
  DSV4_ASSIGN_OR_RETURN(mw->norm, l.F32("model.norm.weight", DType::kBF16, {D}));
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    LayerWeights w;
    w.layer = i;
    w.dense = c.is_dense_layer(i);
    const std::string p = "model.layers." + std::to_string(i) + ".";
    DSV4_ASSIGN_OR_RETURN(w.input_norm, l.F32(p + "input_layernorm.weight", DType::kBF16, {D}));
    DSV4_ASSIGN_OR_RETURN(w.post_attn_norm,
                          l.F32(p + "post_attention_layernorm.weight", DType::kBF16, {D}));
    DSV4_RETURN_IF_ERROR(LoadAttention(l, c, p + "self_attn.", w.attn));
    DSV4_RETURN_IF_ERROR(LoadMlp(l, c, p + "mlp.", w));
    mw->layers.push_back(std::move(w));
  }
  return mw;
}

}  // namespace dsv4::v32
