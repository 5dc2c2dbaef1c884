#include "models/v4/weights.h"

#include <cstring>
#include <string>

#include "core/fp8.h"
#include "core/quant.h"
#include "kernels/cpu/fp4_tiles.h"
#include "kernels/cpu/isa.h"

namespace dsv4::v4 {
namespace {

using kernels::LinearKind;
using ::dsv4::DType;
using checkpoint::ModelConfig;
using checkpoint::TensorSource;
using checkpoint::TensorView;

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

  // A block-quantised dense linear (or its BF16 variant). `module` has no ".weight" suffix.
  Result<LinearWeight> Dense(const std::string& module, int64_t out, int64_t in) {
    LinearWeight w{LinearKind::kFp8Block, out, in};
    if (c_.weight_format == checkpoint::WeightFormat::kBf16) {
      w.kind = LinearKind::kBf16;
      DSV4_ASSIGN_OR_RETURN(w.bf16, View<BF16>(module + ".weight", DType::kBF16, {out, in}));
      return w;
    }
    DSV4_ASSIGN_OR_RETURN(w.codes, View<uint8_t>(module + ".weight", DType::kF8E4M3, {out, in}));
    DSV4_ASSIGN_OR_RETURN(w.scales, View<uint8_t>(module + ".scale", DType::kF8E8M0,
                                                  {(out + 127) / 128, (in + 127) / 128}));
    DSV4_RETURN_IF_ERROR(CheckScales(module + ".scale", w.scales, ((out + 127) / 128) * ((in + 127) / 128)));
    return w;
  }

  // A routed expert linear: packed FP4 + E8M0 per 32 (or BF16). On a CPU whose kernels run
  // the AVX-512 BF16 path the codes are repacked once into that kernel's tile layout
  // (kernels/cpu/fp4_tiles.h: same size, about 1.4x the GEMV throughput); every other path
  // reads the checkpoint layout (they can read tiles too, slowly, if the ISA changes later).
  Result<LinearWeight> Expert(const std::string& module, int64_t out, int64_t in) {
    if (c_.weight_format == checkpoint::WeightFormat::kBf16) return Dense(module, out, in);
    LinearWeight w{LinearKind::kFp4Row32, out, in};
    DSV4_ASSIGN_OR_RETURN(w.codes, View<uint8_t>(module + ".weight", DType::kI8, {out, in / 2}));
    DSV4_ASSIGN_OR_RETURN(w.scales,
                          View<uint8_t>(module + ".scale", DType::kF8E8M0, {out, in / 32}));
    DSV4_RETURN_IF_ERROR(CheckScales(module + ".scale", w.scales, out * (in / 32)));
    if (kernels::ActiveIsa() == kernels::Isa::kAvx512Bf16 && kernels::Fp4TilesSupported(out, in)) {
      uint8_t* tiles = arena_.Alloc<uint8_t>(static_cast<size_t>(kernels::Fp4TilesBytes(out, in)));
      kernels::RepackFp4Tiles(w.codes, out, in, tiles);
      w.codes = nullptr;
      w.fp4_tiles = tiles;
    }
    return w;
  }

  // wo_a: used as its BF16 dequantisation without activation quantisation (§6.5). Kept as
  // FP8 (kFp8AsBf16: decoded exactly in registers, half the bytes) when every scale makes
  // code x scale a BF16 normal and the groups of `group_rows` rows start on 128-row tile
  // boundaries; otherwise dequantised once to BF16.
  Result<LinearWeight> DequantizedBf16(const std::string& module, int64_t out, int64_t in,
                                       int64_t group_rows) {
    DSV4_ASSIGN_OR_RETURN(LinearWeight q, Dense(module, out, in));
    if (q.kind == LinearKind::kBf16) return q;
    const int64_t tiles = ((out + 127) / 128) * ((in + 127) / 128);
    if (group_rows % 128 == 0 && kernels::Fp8AsBf16ScalesOk(q.scales, tiles)) {
      q.kind = LinearKind::kFp8AsBf16;
      return q;
    }
    std::vector<float> deq(static_cast<size_t>(out * in));
    DequantizeFp8Block128({q.codes, deq.size()}, {q.scales, static_cast<size_t>(((out + 127) / 128) * ((in + 127) / 128))},
                          out, in, deq);
    BF16* b = arena_.Alloc<BF16>(deq.size());
    for (size_t i = 0; i < deq.size(); ++i) b[i] = F32ToBf16(deq[i]);
    return LinearWeight{LinearKind::kBf16, out, in, nullptr, nullptr, b};
  }

  // A BF16 matrix used in FP32 (compressor, router gate, head): kF32 over the BF16 bytes (the kernels
  // promote each value exactly), not an FP32 copy of twice the size.
  Result<LinearWeight> PromotedF32(const std::string& name, int64_t out, int64_t in) {
    LinearWeight w{LinearKind::kF32, out, in};
    DSV4_ASSIGN_OR_RETURN(w.bf16, View<BF16>(name, DType::kBF16, {out, in}));
    return w;
  }

 private:
  // E8M0 0xFF is NaN: a checkpoint with one would poison every output.
  Status CheckScales(const std::string& name, const uint8_t* s, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
      if (s[i] == kE8M0NaN) {
        return Status::DataLoss(src_.label() + ": tensor '" + name + "' has a NaN scale (0xFF) at " +
                                "element " + std::to_string(i));
      }
    }
    return Status::Ok();
  }

  const ModelConfig& c_;
  const TensorSource& src_;
  WeightArena& arena_;
  checkpoint::TensorReader reader_;
};

Result<MhcWeights> LoadMhc(Loader& l, const std::string& p, int64_t mix, int64_t width) {
  MhcWeights m;
  m.fn = LinearWeight{LinearKind::kF32, mix, width};
  DSV4_ASSIGN_OR_RETURN(m.fn.f32, l.F32(p + "_fn", DType::kF32, {mix, width}));
  DSV4_ASSIGN_OR_RETURN(m.base, l.F32(p + "_base", DType::kF32, {mix}));
  DSV4_ASSIGN_OR_RETURN(m.scale, l.F32(p + "_scale", DType::kF32, {3}));
  return m;
}

Result<CompressorWeights> LoadCompressor(Loader& l, const ModelConfig& c, const std::string& p,
                                         int64_t m, int64_t width) {
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

Status LoadAttention(Loader& l, const ModelConfig& c, const std::string& p, LayerWeights& w) {
  const int64_t D = c.hidden_size, H = c.num_attention_heads, d = c.head_dim;
  const int64_t Q = c.q_lora_rank, G = c.o_groups, R = c.o_lora_rank;
  DSV4_ASSIGN_OR_RETURN(w.attn_sink, l.F32(p + "attn.attn_sink", DType::kF32, {H}));
  DSV4_ASSIGN_OR_RETURN(w.wq_a, l.Dense(p + "attn.wq_a", Q, D));
  DSV4_ASSIGN_OR_RETURN(w.q_norm, l.F32(p + "attn.q_norm.weight", DType::kBF16, {Q}));
  DSV4_ASSIGN_OR_RETURN(w.wq_b, l.Dense(p + "attn.wq_b", H * d, Q));
  DSV4_ASSIGN_OR_RETURN(w.wkv, l.Dense(p + "attn.wkv", d, D));
  DSV4_ASSIGN_OR_RETURN(w.kv_norm, l.F32(p + "attn.kv_norm.weight", DType::kBF16, {d}));
  DSV4_ASSIGN_OR_RETURN(w.wo_a, l.DequantizedBf16(p + "attn.wo_a", G * R, H * d / G, R));
  DSV4_ASSIGN_OR_RETURN(w.wo_b, l.Dense(p + "attn.wo_b", D, G * R));
  const int64_t m = c.ratio(w.layer);
  if (m > 0) {
    DSV4_ASSIGN_OR_RETURN(w.compressor, LoadCompressor(l, c, p + "attn.compressor.", m, d));
  }
  if (m == 4) {
    const int64_t nI = c.index_n_heads, dI = c.index_head_dim;
    DSV4_ASSIGN_OR_RETURN(w.indexer.wq_b, l.Dense(p + "attn.indexer.wq_b", nI * dI, Q));
    LinearWeight wp{LinearKind::kBf16, nI, D};
    DSV4_ASSIGN_OR_RETURN(wp.bf16, l.View<BF16>(p + "attn.indexer.weights_proj.weight",
                                                DType::kBF16, {nI, D}));
    w.indexer.weights_proj = wp;
    DSV4_ASSIGN_OR_RETURN(w.indexer.compressor,
                          LoadCompressor(l, c, p + "attn.indexer.compressor.", 4, dI));
  }
  return Status::Ok();
}

Status LoadFfn(Loader& l, const ModelConfig& c, const std::string& p, WeightArena& arena,
               const TensorSource& src, LayerWeights& w) {
  const int64_t D = c.hidden_size, E = c.n_routed_experts, I = c.moe_intermediate_size;
  DSV4_ASSIGN_OR_RETURN(w.gate, l.PromotedF32(p + "ffn.gate.weight", E, D));
  if (c.is_hash_layer(w.layer)) {
    const int64_t k = c.num_experts_per_tok;
    DSV4_ASSIGN_OR_RETURN(const int64_t* ids,
                          l.View<int64_t>(p + "ffn.gate.tid2eid", DType::kI64, {c.vocab_size, k}));
    int32_t* table = arena.Alloc<int32_t>(static_cast<size_t>(c.vocab_size * k));
    for (int64_t i = 0; i < c.vocab_size * k; ++i) {
      if (ids[i] < 0 || ids[i] >= E) {
        return Status::DataLoss(src.label() + ": tensor '" + p + "ffn.gate.tid2eid' row " +
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
    const std::string q = p + "ffn.experts." + std::to_string(e) + ".";
    DSV4_ASSIGN_OR_RETURN(w.experts[e].w1, l.Expert(q + "w1", I, D));
    DSV4_ASSIGN_OR_RETURN(w.experts[e].w3, l.Expert(q + "w3", I, D));
    DSV4_ASSIGN_OR_RETURN(w.experts[e].w2, l.Expert(q + "w2", D, I));
  }
  w.has_shared = c.n_shared_experts > 0;
  if (w.has_shared) {
    const int64_t Is = I * c.n_shared_experts;
    DSV4_ASSIGN_OR_RETURN(w.shared.w1, l.Dense(p + "ffn.shared_experts.w1", Is, D));
    DSV4_ASSIGN_OR_RETURN(w.shared.w3, l.Dense(p + "ffn.shared_experts.w3", Is, D));
    DSV4_ASSIGN_OR_RETURN(w.shared.w2, l.Dense(p + "ffn.shared_experts.w2", D, Is));
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<ModelWeights>> LoadWeights(const ModelConfig& c, const TensorSource& src) {
  if (c.arch != checkpoint::Arch::kV4) {
    return Status::InvalidArgument(src.label() + ": not a DeepSeek-V4 checkpoint");
  }
  auto mw = std::make_unique<ModelWeights>();
  Loader l(c, src, mw->arena);
  const int64_t D = c.hidden_size, V = c.vocab_size, hc = c.hc_mult;
  const int64_t mix = (2 + hc) * hc;
  DSV4_ASSIGN_OR_RETURN(mw->embed, l.View<BF16>("embed.weight", DType::kBF16, {V, D}));
  DSV4_ASSIGN_OR_RETURN(mw->head, l.PromotedF32("head.weight", V, D));
  DSV4_ASSIGN_OR_RETURN(mw->norm, l.F32("norm.weight", DType::kBF16, {D}));
  mw->hc_head.fn = LinearWeight{LinearKind::kF32, hc, hc * D};
  DSV4_ASSIGN_OR_RETURN(mw->hc_head.fn.f32, l.F32("hc_head_fn", DType::kF32, {hc, hc * D}));
  DSV4_ASSIGN_OR_RETURN(mw->hc_head.base, l.F32("hc_head_base", DType::kF32, {hc}));
  DSV4_ASSIGN_OR_RETURN(mw->hc_head.scale, l.F32("hc_head_scale", DType::kF32, {1}));
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    LayerWeights w;
    w.layer = i;
    w.kind = c.layer_kind(i);
    const std::string p = "layers." + std::to_string(i) + ".";
    DSV4_ASSIGN_OR_RETURN(w.attn_norm, l.F32(p + "attn_norm.weight", DType::kBF16, {D}));
    DSV4_ASSIGN_OR_RETURN(w.ffn_norm, l.F32(p + "ffn_norm.weight", DType::kBF16, {D}));
    DSV4_ASSIGN_OR_RETURN(w.hc_attn, LoadMhc(l, p + "hc_attn", mix, hc * D));
    DSV4_ASSIGN_OR_RETURN(w.hc_ffn, LoadMhc(l, p + "hc_ffn", mix, hc * D));
    DSV4_RETURN_IF_ERROR(LoadAttention(l, c, p, w));
    DSV4_RETURN_IF_ERROR(LoadFfn(l, c, p, mw->arena, src, w));
    mw->layers.push_back(std::move(w));
  }
  return mw;
}

}  // namespace dsv4::v4
