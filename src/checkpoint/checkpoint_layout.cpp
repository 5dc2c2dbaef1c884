#include "checkpoint/checkpoint_layout.h"

#include "core/check.h"
#include "checkpoint/tensor.h"

namespace dsv4::checkpoint {
namespace {

// Appends weights with a common name prefix, layer and group.
class WeightList {
 public:
  explicit WeightList(std::vector<WeightSpec>* out) : out_(out) {}
  void Scope(std::string prefix, int64_t layer, bool mtp) {
    prefix_ = std::move(prefix);
    layer_ = layer;
    mtp_ = mtp;
  }
  void Plain(const std::string& name, DType dtype, std::vector<int64_t> shape, ParamGroup g) {
    out_->push_back({prefix_ + name, WeightKind::kPlain, dtype, std::move(shape), g, mtp_, layer_});
  }
  void Dense(const std::string& name, int64_t out, int64_t in, ParamGroup g) {
    out_->push_back({prefix_ + name, WeightKind::kDenseLinear, DType::kF8E4M3, {out, in}, g, mtp_,
                     layer_});
  }
  void Expert(const std::string& name, int64_t out, int64_t in) {
    out_->push_back({prefix_ + name, WeightKind::kExpertLinear, DType::kI8, {out, in},
                     ParamGroup::kRoutedExperts, mtp_, layer_});
  }

 private:
  std::vector<WeightSpec>* out_;
  std::string prefix_;
  int64_t layer_ = -1;
  bool mtp_ = false;
};

void AddV4Mhc(const ModelConfig& c, WeightList& w, const std::string& sub) {
  const int64_t mix = (2 + c.hc_mult) * c.hc_mult;  // pre (hc) + post (hc) + comb (hc x hc)
  w.Plain("hc_" + sub + "_fn", DType::kF32, {mix, c.hc_mult * c.hidden_size}, ParamGroup::kMhc);
  w.Plain("hc_" + sub + "_base", DType::kF32, {mix}, ParamGroup::kMhc);
  w.Plain("hc_" + sub + "_scale", DType::kF32, {3}, ParamGroup::kMhc);
}

void AddV4Compressor(const ModelConfig& c, WeightList& w, const std::string& p, int64_t m,
                     int64_t width) {
  const int64_t kappa = m == 4 ? 2 : 1;  // overlapping windows double the features
  w.Plain(p + "wkv.weight", DType::kBF16, {kappa * width, c.hidden_size}, ParamGroup::kAttention);
  w.Plain(p + "wgate.weight", DType::kBF16, {kappa * width, c.hidden_size},
          ParamGroup::kAttention);
  w.Plain(p + "ape", DType::kF32, {m, kappa * width}, ParamGroup::kAttention);
  w.Plain(p + "norm.weight", DType::kBF16, {width}, ParamGroup::kAttention);
}

// One V4 block (spec §12.1); `layer` >= num_hidden_layers is a draft layer (never hash-routed;
// SWA-only when its compress_ratios entry is 0, as every release has it).
void AddV4Block(const ModelConfig& c, WeightList& w, int64_t layer) {
  const int64_t D = c.hidden_size, H = c.num_attention_heads, d = c.head_dim;
  const int64_t G = c.o_groups, R = c.o_lora_rank, Q = c.q_lora_rank;
  const int64_t E = c.n_routed_experts, I = c.moe_intermediate_size;
  const int64_t m = c.ratio(layer);
  w.Plain("attn_norm.weight", DType::kBF16, {D}, ParamGroup::kNorm);
  w.Plain("ffn_norm.weight", DType::kBF16, {D}, ParamGroup::kNorm);
  AddV4Mhc(c, w, "attn");
  AddV4Mhc(c, w, "ffn");
  w.Plain("attn.attn_sink", DType::kF32, {H}, ParamGroup::kAttention);
  w.Dense("attn.wq_a", Q, D, ParamGroup::kAttention);
  w.Plain("attn.q_norm.weight", DType::kBF16, {Q}, ParamGroup::kAttention);
  w.Dense("attn.wq_b", H * d, Q, ParamGroup::kAttention);
  w.Dense("attn.wkv", d, D, ParamGroup::kAttention);
  w.Plain("attn.kv_norm.weight", DType::kBF16, {d}, ParamGroup::kAttention);
  w.Dense("attn.wo_a", G * R, H * d / G, ParamGroup::kAttention);
  w.Dense("attn.wo_b", D, G * R, ParamGroup::kAttention);
  if (m > 0) AddV4Compressor(c, w, "attn.compressor.", m, d);
  if (m == 4) {
    w.Dense("attn.indexer.wq_b", c.index_n_heads * c.index_head_dim, Q, ParamGroup::kAttention);
    w.Plain("attn.indexer.weights_proj.weight", DType::kBF16, {c.index_n_heads, D},
            ParamGroup::kAttention);
    AddV4Compressor(c, w, "attn.indexer.compressor.", 4, c.index_head_dim);
  }
  w.Plain("ffn.gate.weight", DType::kBF16, {E, D}, ParamGroup::kRouter);
  if (layer < c.num_hidden_layers && c.is_hash_layer(layer)) {
    w.Plain("ffn.gate.tid2eid", DType::kI64, {c.vocab_size, c.num_experts_per_tok},
            ParamGroup::kRouter);
  } else {
    w.Plain("ffn.gate.bias", DType::kF32, {E}, ParamGroup::kRouter);
  }
  for (int64_t e = 0; e < E; ++e) {
    const std::string p = "ffn.experts." + std::to_string(e) + ".";
    w.Expert(p + "w1", I, D);
    w.Expert(p + "w3", I, D);
    w.Expert(p + "w2", D, I);
  }
  if (c.n_shared_experts > 0) {
    const int64_t Is = I * c.n_shared_experts;
    w.Dense("ffn.shared_experts.w1", Is, D, ParamGroup::kSharedExperts);
    w.Dense("ffn.shared_experts.w3", Is, D, ParamGroup::kSharedExperts);
    w.Dense("ffn.shared_experts.w2", D, Is, ParamGroup::kSharedExperts);
  }
}

// HC_head parameters (spec §5.4): the main model's, and each drafter's own.
void AddV4HcHead(const ModelConfig& c, WeightList& w) {
  w.Plain("hc_head_fn", DType::kF32, {c.hc_mult, c.hc_mult * c.hidden_size}, ParamGroup::kMhc);
  w.Plain("hc_head_base", DType::kF32, {c.hc_mult}, ParamGroup::kMhc);
  w.Plain("hc_head_scale", DType::kF32, {1}, ParamGroup::kMhc);
}

// The April MTP module (spec §11.3, §12.1): `mtp.0.`, layer id L.
void AddV4Mtp(const ModelConfig& c, WeightList& w) {
  const int64_t D = c.hidden_size, L = c.num_hidden_layers;
  w.Scope("mtp.0.", L, true);
  AddV4Block(c, w, L);
  w.Dense("e_proj", D, D, ParamGroup::kMtpProjection);
  w.Dense("h_proj", D, D, ParamGroup::kMtpProjection);
  w.Plain("enorm.weight", DType::kBF16, {D}, ParamGroup::kMtpProjection);
  w.Plain("hnorm.weight", DType::kBF16, {D}, ParamGroup::kMtpProjection);
  w.Plain("norm.weight", DType::kBF16, {D}, ParamGroup::kMtpProjection);
  AddV4HcHead(c, w);
}

// DSpark draft blocks (spec §11.4): `mtp.{b}.` full SWA-only blocks (layer ids L + b), the
// target-state projection on the first, the output heads on the last.
void AddV4Dspark(const ModelConfig& c, WeightList& w) {
  const int64_t D = c.hidden_size, V = c.vocab_size, L = c.num_hidden_layers;
  const int64_t N = c.dspark.num_blocks, R = c.dspark.markov_rank;
  const int64_t T = static_cast<int64_t>(c.dspark.target_layer_ids.size());
  for (int64_t b = 0; b < N; ++b) {
    w.Scope("mtp." + std::to_string(b) + ".", L + b, true);
    AddV4Block(c, w, L + b);
    if (b == 0) {
      w.Dense("main_proj", D, T * D, ParamGroup::kMtpProjection);
      w.Plain("main_norm.weight", DType::kBF16, {D}, ParamGroup::kMtpProjection);
    }
    if (b == N - 1) {
      w.Plain("norm.weight", DType::kBF16, {D}, ParamGroup::kMtpProjection);
      AddV4HcHead(c, w);
      w.Plain("markov_head.markov_w1.weight", DType::kBF16, {V, R}, ParamGroup::kDraftHead);
      w.Plain("markov_head.markov_w2.weight", DType::kBF16, {V, R}, ParamGroup::kDraftHead);
      w.Plain("confidence_head.proj.weight", DType::kBF16, {1, D + R}, ParamGroup::kDraftHead);
    }
  }
}

void ListV4(const ModelConfig& c, bool include_mtp, WeightList& w) {
  const int64_t D = c.hidden_size, V = c.vocab_size;
  w.Scope("", -1, false);
  w.Plain("embed.weight", DType::kBF16, {V, D}, ParamGroup::kEmbedding);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    w.Scope("layers." + std::to_string(i) + ".", i, false);
    AddV4Block(c, w, i);
  }
  w.Scope("", -1, false);
  w.Plain("norm.weight", DType::kBF16, {D}, ParamGroup::kNorm);
  AddV4HcHead(c, w);
  w.Plain("head.weight", DType::kBF16, {V, D}, ParamGroup::kHead);
  if (!include_mtp) return;
  switch (c.draft_family()) {
    case DraftFamily::kNone: return;
    case DraftFamily::kMtp: return AddV4Mtp(c, w);
    case DraftFamily::kDspark: return AddV4Dspark(c, w);
  }
}

// One V3.2 decoder layer (spec §14.1b).
void AddV32Layer(const ModelConfig& c, WeightList& w, int64_t layer) {
  const int64_t D = c.hidden_size, H = c.num_attention_heads, Q = c.q_lora_rank;
  const int64_t qk = c.qk_nope_head_dim + c.qk_rope_head_dim;
  const ParamGroup A = ParamGroup::kAttention;
  w.Plain("input_layernorm.weight", DType::kBF16, {D}, ParamGroup::kNorm);
  w.Plain("post_attention_layernorm.weight", DType::kBF16, {D}, ParamGroup::kNorm);
  w.Dense("self_attn.q_a_proj", Q, D, A);
  w.Plain("self_attn.q_a_layernorm.weight", DType::kBF16, {Q}, A);
  w.Dense("self_attn.q_b_proj", H * qk, Q, A);
  w.Dense("self_attn.kv_a_proj_with_mqa", c.kv_lora_rank + c.qk_rope_head_dim, D, A);
  w.Plain("self_attn.kv_a_layernorm.weight", DType::kBF16, {c.kv_lora_rank}, A);
  w.Dense("self_attn.kv_b_proj", H * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank, A);
  w.Dense("self_attn.o_proj", D, H * c.v_head_dim, A);
  w.Dense("self_attn.indexer.wq_b", c.index_n_heads * c.index_head_dim, Q, A);
  w.Dense("self_attn.indexer.wk", c.index_head_dim, D, A);
  w.Plain("self_attn.indexer.k_norm.weight", DType::kBF16, {c.index_head_dim}, A);
  w.Plain("self_attn.indexer.k_norm.bias", DType::kBF16, {c.index_head_dim}, A);
  w.Plain("self_attn.indexer.weights_proj.weight", DType::kBF16, {c.index_n_heads, D}, A);
  if (layer < c.num_hidden_layers && c.is_dense_layer(layer)) {
    const int64_t I = c.intermediate_size;
    w.Dense("mlp.gate_proj", I, D, ParamGroup::kDenseFfn);
    w.Dense("mlp.up_proj", I, D, ParamGroup::kDenseFfn);
    w.Dense("mlp.down_proj", D, I, ParamGroup::kDenseFfn);
    return;
  }
  const int64_t E = c.n_routed_experts, I = c.moe_intermediate_size;
  w.Plain("mlp.gate.weight", DType::kBF16, {E, D}, ParamGroup::kRouter);
  w.Plain("mlp.gate.e_score_correction_bias", DType::kF32, {E}, ParamGroup::kRouter);
  for (int64_t e = 0; e < E; ++e) {
    const std::string p = "mlp.experts." + std::to_string(e) + ".";
    w.Dense(p + "gate_proj", I, D, ParamGroup::kRoutedExperts);
    w.Dense(p + "up_proj", I, D, ParamGroup::kRoutedExperts);
    w.Dense(p + "down_proj", D, I, ParamGroup::kRoutedExperts);
  }
  if (c.n_shared_experts > 0) {
    const int64_t Is = I * c.n_shared_experts;
    w.Dense("mlp.shared_experts.gate_proj", Is, D, ParamGroup::kSharedExperts);
    w.Dense("mlp.shared_experts.up_proj", Is, D, ParamGroup::kSharedExperts);
    w.Dense("mlp.shared_experts.down_proj", D, Is, ParamGroup::kSharedExperts);
  }
}

void ListV32(const ModelConfig& c, bool include_mtp, WeightList& w) {
  const int64_t D = c.hidden_size, V = c.vocab_size;
  w.Scope("model.", -1, false);
  w.Plain("embed_tokens.weight", DType::kBF16, {V, D}, ParamGroup::kEmbedding);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    w.Scope("model.layers." + std::to_string(i) + ".", i, false);
    AddV32Layer(c, w, i);
  }
  w.Scope("model.", -1, false);
  w.Plain("norm.weight", DType::kBF16, {D}, ParamGroup::kNorm);
  w.Scope("", -1, false);
  w.Plain("lm_head.weight", DType::kBF16, {V, D}, ParamGroup::kHead);
  if (!include_mtp || c.num_nextn_predict_layers == 0) return;
  const int64_t L = c.num_hidden_layers;
  w.Scope("model.layers." + std::to_string(L) + ".", L, true);
  AddV32Layer(c, w, L);
  w.Dense("eh_proj", D, 2 * D, ParamGroup::kMtpProjection);
  w.Plain("enorm.weight", DType::kBF16, {D}, ParamGroup::kMtpProjection);
  w.Plain("hnorm.weight", DType::kBF16, {D}, ParamGroup::kMtpProjection);
  w.Plain("embed_tokens.weight", DType::kBF16, {V, D}, ParamGroup::kEmbedding);
  w.Plain("shared_head.head.weight", DType::kBF16, {V, D}, ParamGroup::kHead);
  w.Plain("shared_head.norm.weight", DType::kBF16, {D}, ParamGroup::kMtpProjection);
}

}  // namespace

std::string_view ParamGroupName(ParamGroup g) {
  switch (g) {
    case ParamGroup::kEmbedding: return "embedding";
    case ParamGroup::kHead: return "head";
    case ParamGroup::kAttention: return "attention";
    case ParamGroup::kMhc: return "mhc";
    case ParamGroup::kNorm: return "norm";
    case ParamGroup::kRouter: return "router";
    case ParamGroup::kRoutedExperts: return "routed_experts";
    case ParamGroup::kSharedExperts: return "shared_experts";
    case ParamGroup::kDenseFfn: return "dense_ffn";
    case ParamGroup::kMtpProjection: return "mtp_projection";
    case ParamGroup::kDraftHead: return "draft_head";
  }
  return "?";
}

int64_t WeightSpec::num_params() const {
  // tid2eid is an index table, not a trained parameter; published counts leave it out.
  if (kind == WeightKind::kPlain && dtype == DType::kI64) return 0;
  return NumElements(shape);
}

std::vector<WeightSpec> ListWeights(const ModelConfig& c, bool include_mtp) {
  std::vector<WeightSpec> out;
  WeightList w(&out);
  if (c.arch == Arch::kV4) {
    ListV4(c, include_mtp, w);
  } else {
    ListV32(c, include_mtp, w);
  }
  return out;
}

std::vector<LinearFormat> AcceptedLinearFormats(const ModelConfig& c, WeightKind kind) {
  if (kind == WeightKind::kPlain) return {};
  const bool bf16 = c.weight_format == WeightFormat::kBf16;
  if (c.arch == Arch::kV32) {
    if (bf16) return {LinearFormat::kBf16, LinearFormat::kFp8F32};
    return {LinearFormat::kFp8F32, LinearFormat::kBf16};
  }
  if (kind == WeightKind::kDenseLinear) {
    if (bf16) return {LinearFormat::kBf16, LinearFormat::kFp8E8M0};
    return {LinearFormat::kFp8E8M0, LinearFormat::kBf16};
  }
  std::vector<LinearFormat> fp4 = {LinearFormat::kFp4E8M0, LinearFormat::kFp4U8E8M0,
                                   LinearFormat::kNvfp4};
  if (bf16) {
    fp4.insert(fp4.begin(), LinearFormat::kBf16);
  } else {
    fp4.push_back(LinearFormat::kBf16);
  }
  return fp4;
}

std::vector<TensorSpec> ExpandWeight(const ModelConfig& c, const WeightSpec& w, int64_t index) {
  if (w.kind == WeightKind::kPlain) return {{w.name, w.dtype, w.shape, index}};
  return StoredLinear(w, AcceptedLinearFormats(c, w.kind).front(), index);
}

std::vector<TensorSpec> StoredLinear(const WeightSpec& w, LinearFormat format, int64_t index) {
  DSV4_CHECK(w.kind != WeightKind::kPlain && w.shape.size() == 2);
  std::vector<TensorSpec> out;
  for (LinearTensor& t : LinearTensors(w.name, format, w.shape[0], w.shape[1])) {
    out.push_back({std::move(t.name), t.dtype, std::move(t.shape), index, t.optional});
  }
  return out;
}

std::vector<TensorSpec> ListTensors(const ModelConfig& c, bool include_mtp) {
  std::vector<WeightSpec> weights = ListWeights(c, include_mtp);
  std::vector<TensorSpec> out;
  for (size_t i = 0; i < weights.size(); ++i) {
    for (TensorSpec& t : ExpandWeight(c, weights[i], static_cast<int64_t>(i))) {
      out.push_back(std::move(t));
    }
  }
  return out;
}

}  // namespace dsv4::checkpoint
