#include "models/v32/weights.h"

#include <cmath>
#include <cstring>
#include <string>

#include "core/fp8.h"

namespace dsv4::v32 {
namespace {

using ::dsv4::DType;
using kernels::LinearKind;
using checkpoint::ModelConfig;
using checkpoint::TensorSource;
using checkpoint::TensorView;

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

class Loader {
 public:
  Loader(const ModelConfig& c, const TensorSource& s, WeightArena& a)
      : c_(c), src_(s), arena_(a), reader_(s, a) {}

  template <typename T>
  Result<const T*> View(const std::string& name, DType dtype, std::vector<int64_t> shape) {
    return reader_.View<T>(name, dtype, std::move(shape));
  }
  Result<const float*> F32(const std::string& name, DType dtype, std::vector<int64_t> shape) {
    return reader_.F32(name, dtype, std::move(shape));
  }

  // A block-quantised linear (FP8 + F32 weight_scale_inv) or its BF16 variant. `module` has
  // no ".weight" suffix.
  Result<LinearWeight> Dense(const std::string& module, int64_t out, int64_t in) {
    LinearWeight w{LinearKind::kFp8Block, out, in};
    if (c_.weight_format == checkpoint::WeightFormat::kBf16) {
      w.kind = LinearKind::kBf16;
      DSV4_ASSIGN_OR_RETURN(w.bf16, View<BF16>(module + ".weight", DType::kBF16, {out, in}));
      return w;
    }
    if (in % 128 != 0) {
      return Status::InvalidArgument(src_.label() + ": tensor '" + module + ".weight' has " +
                                     std::to_string(in) + " in-features, expected a multiple " +
                                     "of 128 (FP8 activation blocks)");
    }
    const int64_t grid = CeilDiv(out, 128) * CeilDiv(in, 128);
    DSV4_ASSIGN_OR_RETURN(w.codes, View<uint8_t>(module + ".weight", DType::kF8E4M3, {out, in}));
    DSV4_ASSIGN_OR_RETURN(w.scales_f32, View<float>(module + ".weight_scale_inv", DType::kF32,
                                                    {CeilDiv(out, 128), CeilDiv(in, 128)}));
    DSV4_RETURN_IF_ERROR(CheckScales(module + ".weight_scale_inv", w.scales_f32, grid));
    return w;
  }

  // The dequantised values of a Dense linear as BF16 [out, in] (the reference's
  // weight_dequant: fp8 × scale in FP32, rounded to BF16; exact for power-of-two scales).
  Result<const BF16*> DequantizedBf16(const std::string& module, int64_t out, int64_t in) {
    if (c_.weight_format == checkpoint::WeightFormat::kBf16) {
      return View<BF16>(module + ".weight", DType::kBF16, {out, in});
    }
    DSV4_ASSIGN_OR_RETURN(const uint8_t* codes,
                          View<uint8_t>(module + ".weight", DType::kF8E4M3, {out, in}));
    const int64_t cols = CeilDiv(in, 128);
    DSV4_ASSIGN_OR_RETURN(const float* scales, View<float>(module + ".weight_scale_inv",
                                                           DType::kF32, {CeilDiv(out, 128), cols}));
    DSV4_RETURN_IF_ERROR(
        CheckScales(module + ".weight_scale_inv", scales, CeilDiv(out, 128) * cols));
    BF16* b = arena_.Alloc<BF16>(static_cast<size_t>(out * in));
    for (int64_t r = 0; r < out; ++r) {
      for (int64_t k = 0; k < in; ++k) {
        b[r * in + k] =
            F32ToBf16(E4M3ToF32(codes[r * in + k]) * scales[(r / 128) * cols + k / 128]);
      }
    }
    return static_cast<const BF16*>(b);
  }

  // A BF16 matrix used in FP32 (router gate, indexer weights_proj, lm_head): kF32 over the BF16 bytes (the kernels
  // promote each value exactly), not an FP32 copy of twice the size.
  Result<LinearWeight> PromotedF32(const std::string& name, int64_t out, int64_t in) {
    LinearWeight w{LinearKind::kF32, out, in};
    DSV4_ASSIGN_OR_RETURN(w.bf16, View<BF16>(name, DType::kBF16, {out, in}));
    return w;
  }

  WeightArena& arena() { return arena_; }

 private:
  // A NaN or infinite scale would poison every output of its 128x128 tile.
  Status CheckScales(const std::string& name, const float* s, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
      if (!std::isfinite(s[i])) {
        return Status::DataLoss(src_.label() + ": tensor '" + name + "' element " +
                                std::to_string(i) + " is " + std::to_string(s[i]) +
                                ", expected a finite scale");
      }
    }
    return Status::Ok();
  }

  const ModelConfig& c_;
  const TensorSource& src_;
  WeightArena& arena_;
  checkpoint::TensorReader reader_;
};

Status LoadIndexer(Loader& l, const ModelConfig& c, const std::string& p, IndexerWeights& w) {
  const int64_t D = c.hidden_size, nI = c.index_n_heads, dI = c.index_head_dim;
  DSV4_ASSIGN_OR_RETURN(w.wq_b, l.Dense(p + "wq_b", nI * dI, c.q_lora_rank));
  DSV4_ASSIGN_OR_RETURN(w.wk, l.Dense(p + "wk", dI, D));
  DSV4_ASSIGN_OR_RETURN(w.k_norm_w, l.F32(p + "k_norm.weight", DType::kBF16, {dI}));
  DSV4_ASSIGN_OR_RETURN(w.k_norm_b, l.F32(p + "k_norm.bias", DType::kBF16, {dI}));
  DSV4_ASSIGN_OR_RETURN(w.weights_proj, l.PromotedF32(p + "weights_proj.weight", nI, D));
  return Status::Ok();
}

Status LoadAttention(Loader& l, const ModelConfig& c, const std::string& p, AttentionWeights& w) {
  const int64_t D = c.hidden_size, H = c.num_attention_heads, Q = c.q_lora_rank;
  const int64_t nope = c.qk_nope_head_dim, rope = c.qk_rope_head_dim, v = c.v_head_dim;
  const int64_t lat = c.kv_lora_rank;
  DSV4_ASSIGN_OR_RETURN(w.q_a, l.Dense(p + "q_a_proj", Q, D));
  DSV4_ASSIGN_OR_RETURN(w.q_a_norm, l.F32(p + "q_a_layernorm.weight", DType::kBF16, {Q}));
  DSV4_ASSIGN_OR_RETURN(w.q_b, l.Dense(p + "q_b_proj", H * (nope + rope), Q));
  DSV4_ASSIGN_OR_RETURN(w.kv_a, l.Dense(p + "kv_a_proj_with_mqa", lat + rope, D));
  DSV4_ASSIGN_OR_RETURN(w.kv_a_norm, l.F32(p + "kv_a_layernorm.weight", DType::kBF16, {lat}));
  DSV4_ASSIGN_OR_RETURN(w.o_proj, l.Dense(p + "o_proj", D, H * v));
  // kv_b_proj rows of head h: [nope rows of W_UK,h | v rows of W_UV,h], each [.., kv_lora].
  DSV4_ASSIGN_OR_RETURN(const BF16* kvb, l.DequantizedBf16(p + "kv_b_proj", H * (nope + v), lat));
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

Result<FfnWeights> LoadFfn(Loader& l, const std::string& p, int64_t inter, int64_t D) {
  FfnWeights f;
  DSV4_ASSIGN_OR_RETURN(f.gate, l.Dense(p + "gate_proj", inter, D));
  DSV4_ASSIGN_OR_RETURN(f.up, l.Dense(p + "up_proj", inter, D));
  DSV4_ASSIGN_OR_RETURN(f.down, l.Dense(p + "down_proj", D, inter));
  return f;
}

Status LoadMlp(Loader& l, const ModelConfig& c, const std::string& p, LayerWeights& w) {
  const int64_t D = c.hidden_size, E = c.n_routed_experts, I = c.moe_intermediate_size;
  if (w.dense) {
    DSV4_ASSIGN_OR_RETURN(w.ffn, LoadFfn(l, p, c.intermediate_size, D));
    return Status::Ok();
  }
  DSV4_ASSIGN_OR_RETURN(w.router, l.PromotedF32(p + "gate.weight", E, D));
  DSV4_ASSIGN_OR_RETURN(w.router_bias, l.F32(p + "gate.e_score_correction_bias", DType::kF32, {E}));
  for (int64_t e = 0; e < E; ++e) {
    DSV4_ASSIGN_OR_RETURN(FfnWeights f, LoadFfn(l, p + "experts." + std::to_string(e) + ".", I, D));
    w.experts.push_back(f);
  }
  w.has_shared = c.n_shared_experts > 0;
  if (w.has_shared) {
    DSV4_ASSIGN_OR_RETURN(w.shared, LoadFfn(l, p + "shared_experts.", I * c.n_shared_experts, D));
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<ModelWeights>> LoadWeights(const ModelConfig& c, const TensorSource& src) {
  if (c.arch != checkpoint::Arch::kV32) {
    return Status::InvalidArgument(src.label() + ": not a DeepSeek-V3.2 checkpoint");
  }
  auto mw = std::make_unique<ModelWeights>();
  Loader l(c, src, mw->arena);
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
