#include "models/v4/weights.h"

#include <string>

#include "checkpoint/checkpoint_layout.h"
#include "models/common/linear_loader.h"

namespace dsv4::v4 {
namespace {

using ::dsv4::DType;
using checkpoint::ModelConfig;
using checkpoint::TensorSource;
using kernels::LinearKind;
using models::LinearFormat;
using models::LinearLoader;

Result<MhcWeights> LoadMhc(LinearLoader& l, const std::string& p, int64_t mix, int64_t width) {
  MhcWeights m;
  m.fn = LinearWeight{LinearKind::kF32, mix, width};
  DSV4_ASSIGN_OR_RETURN(m.fn.f32, l.F32(p + "_fn", DType::kF32, {mix, width}));
  DSV4_ASSIGN_OR_RETURN(m.base, l.F32(p + "_base", DType::kF32, {mix}));
  DSV4_ASSIGN_OR_RETURN(m.scale, l.F32(p + "_scale", DType::kF32, {3}));
  return m;
}

Result<CompressorWeights> LoadCompressor(LinearLoader& l, const ModelConfig& c,
                                         const std::string& p, int64_t m, int64_t width) {
  CompressorWeights w;
  w.ratio = m;
  w.width = width;
  const int64_t kappa = m == 4 ? 2 : 1;
  DSV4_ASSIGN_OR_RETURN(w.wkv, l.PromotedF32(p + "wkv.weight", kappa * width, c.hidden_size));
  DSV4_ASSIGN_OR_RETURN(w.wgate, l.PromotedF32(p + "wgate.weight", kappa * width, c.hidden_size));
  DSV4_ASSIGN_OR_RETURN(w.ape, l.F32(p + "ape", DType::kF32, {m, kappa * width}));
  DSV4_ASSIGN_OR_RETURN(w.norm, l.F32(p + "norm.weight", DType::kBF16, {width}));
  return w;
}

Status LoadAttention(LinearLoader& l, const ModelConfig& c, const std::string& p,
                     LayerWeights& w) {
  const int64_t D = c.hidden_size, H = c.num_attention_heads, d = c.head_dim;
  const int64_t Q = c.q_lora_rank, G = c.o_groups, R = c.o_lora_rank;
  const std::vector<LinearFormat> dense = DenseFormats(c);
  DSV4_ASSIGN_OR_RETURN(w.attn_sink, l.F32(p + "attn.attn_sink", DType::kF32, {H}));
  DSV4_ASSIGN_OR_RETURN(w.wq_a, l.Linear(p + "attn.wq_a", dense, Q, D));
  DSV4_ASSIGN_OR_RETURN(w.q_norm, l.F32(p + "attn.q_norm.weight", DType::kBF16, {Q}));
  DSV4_ASSIGN_OR_RETURN(w.wq_b, l.Linear(p + "attn.wq_b", dense, H * d, Q));
  DSV4_ASSIGN_OR_RETURN(w.wkv, l.Linear(p + "attn.wkv", dense, d, D));
  DSV4_ASSIGN_OR_RETURN(w.kv_norm, l.F32(p + "attn.kv_norm.weight", DType::kBF16, {d}));
  DSV4_ASSIGN_OR_RETURN(const LinearFormat wo_a,
                        checkpoint::DetectLinearFormat(l.source(), p + "attn.wo_a", dense));
  DSV4_ASSIGN_OR_RETURN(w.wo_a, l.LinearAsBf16(p + "attn.wo_a", wo_a, G * R, H * d / G, R));
  DSV4_ASSIGN_OR_RETURN(w.wo_b, l.Linear(p + "attn.wo_b", dense, D, G * R));
  const int64_t m = c.ratio(w.layer);
  if (m > 0) {
    DSV4_ASSIGN_OR_RETURN(w.compressor, LoadCompressor(l, c, p + "attn.compressor.", m, d));
  }
  if (m == 4) {
    const int64_t nI = c.index_n_heads, dI = c.index_head_dim;
    DSV4_ASSIGN_OR_RETURN(w.indexer.wq_b, l.Linear(p + "attn.indexer.wq_b", dense, nI * dI, Q));
    DSV4_ASSIGN_OR_RETURN(w.indexer.weights_proj, l.Linear(p + "attn.indexer.weights_proj",
                                                            LinearFormat::kBf16, nI, D));
    DSV4_ASSIGN_OR_RETURN(w.indexer.compressor,
                          LoadCompressor(l, c, p + "attn.indexer.compressor.", 4, dI));
  }
  return Status::Ok();
}

Status LoadFfn(LinearLoader& l, const ModelConfig& c, const std::string& p, LayerWeights& w) {
  const int64_t D = c.hidden_size, E = c.n_routed_experts, I = c.moe_intermediate_size;
  const std::vector<LinearFormat> dense = DenseFormats(c), expert = ExpertFormats(c);
  DSV4_ASSIGN_OR_RETURN(w.gate, l.PromotedF32(p + "ffn.gate.weight", E, D));
  if (c.is_hash_layer(w.layer)) {
    const int64_t k = c.num_experts_per_tok;
    DSV4_ASSIGN_OR_RETURN(const int64_t* ids,
                          l.View<int64_t>(p + "ffn.gate.tid2eid", DType::kI64, {c.vocab_size, k}));
    int32_t* table = l.arena().Alloc<int32_t>(static_cast<size_t>(c.vocab_size * k));
    for (int64_t i = 0; i < c.vocab_size * k; ++i) {
      if (ids[i] < 0 || ids[i] >= E) {
        return Status::DataLoss(l.source().label() + ": tensor '" + p + "ffn.gate.tid2eid' row " +
                                std::to_string(i / k) + " names expert " + std::to_string(ids[i]) +
                                ", expected 0.." + std::to_string(E - 1));
      }
      table[i] = static_cast<int32_t>(ids[i]);
    }
    w.tid2eid = table;
  } else {
    DSV4_ASSIGN_OR_RETURN(w.gate_bias, l.F32(p + "ffn.gate.bias", DType::kF32, {E}));
  }
  w.experts.resize(static_cast<size_t>(E));
  for (int64_t e = 0; e < E; ++e) {
    // Another rank's expert (expert parallelism): left empty, its tensors never read.
    if (!l.options().LoadsExpert(e)) continue;
    const std::string q = p + "ffn.experts." + std::to_string(e) + ".";
    DSV4_ASSIGN_OR_RETURN(w.experts[e].w1, l.Linear(q + "w1", expert, I, D));
    DSV4_ASSIGN_OR_RETURN(w.experts[e].w3, l.Linear(q + "w3", expert, I, D));
    DSV4_ASSIGN_OR_RETURN(w.experts[e].w2, l.Linear(q + "w2", expert, D, I));
  }
  w.has_shared = c.n_shared_experts > 0;
  if (w.has_shared) {
    const int64_t Is = I * c.n_shared_experts;
    DSV4_ASSIGN_OR_RETURN(w.shared.w1, l.Linear(p + "ffn.shared_experts.w1", dense, Is, D));
    DSV4_ASSIGN_OR_RETURN(w.shared.w3, l.Linear(p + "ffn.shared_experts.w3", dense, Is, D));
    DSV4_ASSIGN_OR_RETURN(w.shared.w2, l.Linear(p + "ffn.shared_experts.w2", dense, D, Is));
  }
  return Status::Ok();
}

}  // namespace

std::vector<LinearFormat> DenseFormats(const ModelConfig& c) {
  return checkpoint::AcceptedLinearFormats(c, checkpoint::WeightKind::kDenseLinear);
}

std::vector<LinearFormat> ExpertFormats(const ModelConfig& c) {
  return checkpoint::AcceptedLinearFormats(c, checkpoint::WeightKind::kExpertLinear);
}

Result<LayerWeights> LoadBlock(LinearLoader& l, const ModelConfig& c, const std::string& p,
                               int64_t layer) {
  const int64_t D = c.hidden_size, hc = c.hc_mult;
  const int64_t mix = (2 + hc) * hc;
  LayerWeights w;
  w.layer = layer;
  w.kind = c.layer_kind(layer);
  DSV4_ASSIGN_OR_RETURN(w.attn_norm, l.F32(p + "attn_norm.weight", DType::kBF16, {D}));
  DSV4_ASSIGN_OR_RETURN(w.ffn_norm, l.F32(p + "ffn_norm.weight", DType::kBF16, {D}));
  DSV4_ASSIGN_OR_RETURN(w.hc_attn, LoadMhc(l, p + "hc_attn", mix, hc * D));
  DSV4_ASSIGN_OR_RETURN(w.hc_ffn, LoadMhc(l, p + "hc_ffn", mix, hc * D));
  DSV4_RETURN_IF_ERROR(LoadAttention(l, c, p, w));
  DSV4_RETURN_IF_ERROR(LoadFfn(l, c, p, w));
  return w;
}

Result<MhcWeights> LoadHcHead(LinearLoader& l, const ModelConfig& c, const std::string& p) {
  const int64_t D = c.hidden_size, hc = c.hc_mult;
  MhcWeights m;
  m.fn = LinearWeight{LinearKind::kF32, hc, hc * D};
  DSV4_ASSIGN_OR_RETURN(m.fn.f32, l.F32(p + "hc_head_fn", DType::kF32, {hc, hc * D}));
  DSV4_ASSIGN_OR_RETURN(m.base, l.F32(p + "hc_head_base", DType::kF32, {hc}));
  DSV4_ASSIGN_OR_RETURN(m.scale, l.F32(p + "hc_head_scale", DType::kF32, {1}));
  return m;
}

Result<std::unique_ptr<ModelWeights>> LoadWeights(const ModelConfig& c, const TensorSource& src,
                                                  const checkpoint::LoadOptions& options) {
  if (c.arch != checkpoint::Arch::kV4) {
    return Status::InvalidArgument(src.label() + ": not a DeepSeek-V4 checkpoint");
  }
  auto mw = std::make_unique<ModelWeights>();
  LinearLoader l(src, mw->arena, options);
  const int64_t D = c.hidden_size, V = c.vocab_size;
  DSV4_ASSIGN_OR_RETURN(mw->embed, l.View<BF16>("embed.weight", DType::kBF16, {V, D}));
  DSV4_ASSIGN_OR_RETURN(mw->head, l.PromotedF32("head.weight", V, D));
  DSV4_ASSIGN_OR_RETURN(mw->norm, l.F32("norm.weight", DType::kBF16, {D}));
  DSV4_ASSIGN_OR_RETURN(mw->hc_head, LoadHcHead(l, c, ""));
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    DSV4_ASSIGN_OR_RETURN(LayerWeights w, LoadBlock(l, c, "layers." + std::to_string(i) + ".", i));
    mw->layers.push_back(std::move(w));
  }
  return mw;
}

}  // namespace dsv4::v4
