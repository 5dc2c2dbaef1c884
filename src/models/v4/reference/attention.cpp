#include "models/v4/reference/attention.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/bf16.h"
#include "core/check.h"
#include "core/quant.h"
#include "models/v4/reference/numerics.h"

namespace dsv4::v4::reference {
namespace {

// Query path (§6.1) and window K=V path (§6.2) for every position.
struct Projections {
  std::vector<float> qr;  // BF16 [T, Q]: q_norm(wq_a(x)), shared with the indexer
  std::vector<float> q;   // BF16 [T, H, d]: per-head normed, RoPE at t
  std::vector<float> kv;  // BF16 [T, d]: kv_norm, RoPE at t, FP8 grid on dims [0, d_nope)
};

// Rows t of x at positions pos0 + t.
Projections Project(const checkpoint::ModelConfig& c, const AttentionWeights& aw,
                    std::span<const float> inv_freq, std::span<const float> x, int64_t num_tokens,
                    int64_t pos0 = 0) {
  const int64_t dim = c.hidden_size, heads = c.num_attention_heads, d = c.head_dim;
  const int64_t d_nope = c.d_nope();
  const float eps = static_cast<float>(c.rms_norm_eps);
  Projections p;
  p.qr.reserve(static_cast<size_t>(num_tokens * c.q_lora_rank));
  p.q.reserve(static_cast<size_t>(num_tokens * heads * d));
  p.kv.reserve(static_cast<size_t>(num_tokens * d));
  for (int64_t t = 0; t < num_tokens; ++t) {
    std::span<const float> xt = x.subspan(t * dim, dim);
    const std::vector<float> qr = RmsNorm(Apply(aw.wq_a, xt), aw.q_norm, eps);
    std::vector<float> q = Apply(aw.wq_b, qr);
    for (int64_t h = 0; h < heads; ++h) {
      std::span<float> qh = std::span<float>(q).subspan(h * d, d);
      HeadRmsNormBf16(qh, eps);
      ApplyRope(qh.subspan(d_nope), inv_freq, pos0 + t, /*inverse=*/false);
    }
    std::vector<float> kv = RmsNorm(Apply(aw.wkv, xt), aw.kv_norm, eps);
    ApplyRope(std::span<float>(kv).subspan(d_nope), inv_freq, pos0 + t, /*inverse=*/false);
    Fp8SimulateBf16(std::span<float>(kv).first(d_nope), kFp8KvBlock);
    p.qr.insert(p.qr.end(), qr.begin(), qr.end());
    p.q.insert(p.q.end(), q.begin(), q.end());
    p.kv.insert(p.kv.end(), kv.begin(), kv.end());
  }
  return p;
}

// §6.5 steps 1-3: z_g = bf16(o_g · W_a[g]ᵀ) per group, concatenated. o: BF16 [H·d].
std::vector<float> GroupedWoA(const checkpoint::ModelConfig& c, const Linear& wo_a,
                              std::span<const float> o) {
  DSV4_CHECK(wo_a.mode == LinearMode::kBf16);
  const int64_t groups = c.o_groups, rank = c.o_lora_rank, group_in = wo_a.in;
  std::vector<float> z(static_cast<size_t>(groups * rank));
  for (int64_t g = 0; g < groups; ++g) {
    std::span<const float> og = o.subspan(g * group_in, group_in);
    for (int64_t r = 0; r < rank; ++r) {
      const float* wrow = wo_a.w.data() + (g * rank + r) * group_in;
      z[g * rank + r] = RoundBf16(DotLanes8(og.data(), wrow, static_cast<size_t>(group_in)));
    }
  }
  return z;
}

// One query position's output: per head, the sink softmax over `rows` and the de-rotation at
// `pos` (§6.4), then the grouped wo_a and wo_b (§6.5). q: BF16 [H, d]. Returns BF16 [D].
std::vector<float> AttendAndProject(const checkpoint::ModelConfig& c, const AttentionWeights& aw,
                                    std::span<const float> inv_freq, std::span<const float> q,
                                    std::span<const float* const> rows, int64_t pos) {
  const int64_t heads = c.num_attention_heads, d = c.head_dim, d_nope = c.d_nope();
  // Python's head_dim ** -0.5 in double, handed to the kernel as FP32.
  const float scale = static_cast<float>(std::pow(static_cast<double>(d), -0.5));
  std::vector<float> o(static_cast<size_t>(heads * d));
  for (int64_t h = 0; h < heads; ++h) {
    std::vector<float> oh = SinkAttention(q.subspan(h * d, d), rows, aw.attn_sink[h], scale);
    ApplyRope(std::span<float>(oh).subspan(d_nope), inv_freq, pos, /*inverse=*/true);
    std::copy(oh.begin(), oh.end(), o.begin() + h * d);
  }
  return Apply(aw.wo_b, GroupedWoA(c, aw.wo_a, o));
}

}  // namespace

Result<AttentionWeights> LoadAttention(const checkpoint::ModelConfig& c, const checkpoint::TensorSource& w,
                                       const std::string& prefix, int64_t layer) {
  const std::string p = prefix + "attn.";
  const int64_t dim = c.hidden_size, heads = c.num_attention_heads, d = c.head_dim;
  const int64_t q_rank = c.q_lora_rank, groups = c.o_groups, o_rank = c.o_lora_rank;
  AttentionWeights aw;
  aw.layer = layer;
  aw.ratio = c.ratio(layer);
  DSV4_ASSIGN_OR_RETURN(aw.attn_sink, LoadFloats(w, p + "attn_sink", DType::kF32, {heads}));
  DSV4_ASSIGN_OR_RETURN(aw.wq_a, LoadDenseLinear(c, w, p + "wq_a", q_rank, dim));
  DSV4_ASSIGN_OR_RETURN(aw.q_norm, LoadFloats(w, p + "q_norm.weight", DType::kBF16, {q_rank}));
  DSV4_ASSIGN_OR_RETURN(aw.wq_b, LoadDenseLinear(c, w, p + "wq_b", heads * d, q_rank));
  DSV4_ASSIGN_OR_RETURN(aw.wkv, LoadDenseLinear(c, w, p + "wkv", d, dim));
  DSV4_ASSIGN_OR_RETURN(aw.kv_norm, LoadFloats(w, p + "kv_norm.weight", DType::kBF16, {d}));
  DSV4_ASSIGN_OR_RETURN(aw.wo_a, LoadWoA(c, w, p + "wo_a", groups * o_rank, heads * d / groups));
  DSV4_ASSIGN_OR_RETURN(aw.wo_b, LoadDenseLinear(c, w, p + "wo_b", dim, groups * o_rank));
  if (aw.ratio > 0) {
    DSV4_ASSIGN_OR_RETURN(aw.compressor, LoadCompressor(c, w, p + "compressor.", aw.ratio, d));
  }
  if (aw.ratio == 4) {
    DSV4_ASSIGN_OR_RETURN(aw.indexer, LoadIndexer(c, w, prefix));
  }
  return aw;
}

std::vector<float> SinkAttention(std::span<const float> q, std::span<const float* const> kv_rows,
                                 float sink, float scale) {
  DSV4_CHECK(!kv_rows.empty());
  const size_t d = q.size();
  std::vector<float> s(kv_rows.size());
  for (size_t j = 0; j < kv_rows.size(); ++j) {
    s[j] = DotLanes8(q.data(), kv_rows[j], d) * scale;
  }
  const float max = *std::max_element(s.begin(), s.end());
  float denominator = 0.0f;
  std::vector<float> numerator(d, 0.0f);
  for (size_t j = 0; j < kv_rows.size(); ++j) {
    const float e = std::exp(s[j] - max);
    denominator += e;
    const float p = RoundBf16(e);
    for (size_t k = 0; k < d; ++k) numerator[k] += p * kv_rows[j][k];
  }
  // The sink enters only the denominator and is not multiplied by the softmax scale.
  denominator += std::exp(sink - max);
  std::vector<float> o(d);
  for (size_t k = 0; k < d; ++k) o[k] = RoundBf16(numerator[k] / denominator);
  return o;
}

std::vector<float> AttentionForward(const checkpoint::ModelConfig& c, const AttentionWeights& aw,
                                    std::span<const float> x, int64_t num_tokens,
                                    std::vector<std::vector<int64_t>>* selected_out) {
  const int64_t heads = c.num_attention_heads, d = c.head_dim;
  const int64_t window = c.sliding_window, ratio = aw.ratio;
  const std::vector<float> inv_freq = LayerRopeInvFreq(c, aw.layer);
  const Projections p = Project(c, aw, inv_freq, x, num_tokens);

  // Compressed entries BF16 [⌊T/m⌋, d] and, per position, which of them it attends to.
  std::vector<float> entries;
  std::vector<std::vector<int64_t>> selected(static_cast<size_t>(num_tokens));
  if (ratio > 0) {
    entries = CompressEntries(*aw.compressor, x, num_tokens,
                              {inv_freq, static_cast<float>(c.rms_norm_eps), EntryQuant::kFp8Nope});
    if (aw.indexer.has_value()) {
      selected = RunIndexer(c, *aw.indexer, inv_freq, x, p.qr, num_tokens).selected;
    } else {
      for (int64_t t = 0; t < num_tokens; ++t) {  // HCA: every visible entry (§9)
        for (int64_t i = 0; i < NumVisibleEntries(t, ratio); ++i) selected[t].push_back(i);
      }
    }
  }

  std::vector<float> out;
  out.reserve(static_cast<size_t>(num_tokens * c.hidden_size));
  std::vector<const float*> rows;
  for (int64_t t = 0; t < num_tokens; ++t) {
    // KV set S_t (§9): window positions max(0, t−W+1)..t ascending, then the chosen compressed
    // entries ascending; one softmax over all of them.
    rows.clear();
    for (int64_t s = std::max<int64_t>(0, t - window + 1); s <= t; ++s) {
      rows.push_back(p.kv.data() + s * d);
    }
    for (int64_t i : selected[t]) {
      DSV4_CHECK(i < NumVisibleEntries(t, ratio));
      rows.push_back(entries.data() + i * d);
    }
    const std::vector<float> y = AttendAndProject(
        c, aw, inv_freq, std::span<const float>(p.q).subspan(t * heads * d, heads * d), rows, t);
    out.insert(out.end(), y.begin(), y.end());
  }
  if (selected_out != nullptr) *selected_out = std::move(selected);
  return out;
}

}  // namespace dsv4::v4::reference

namespace dsv4::v4::reference {

std::vector<float> WindowKeys(const checkpoint::ModelConfig& c, const AttentionWeights& aw,
                              std::span<const float> x, int64_t num_tokens, int64_t pos0) {
  return Project(c, aw, LayerRopeInvFreq(c, aw.layer), x, num_tokens, pos0).kv;
}

std::vector<float> DsparkAttentionForward(const checkpoint::ModelConfig& c,
                                          const AttentionWeights& aw, std::span<const float> x,
                                          int64_t num_tokens, int64_t pos0,
                                          std::span<const float> context) {
  const int64_t heads = c.num_attention_heads, d = c.head_dim;
  const std::vector<float> inv_freq = LayerRopeInvFreq(c, aw.layer);
  const Projections p = Project(c, aw, inv_freq, x, num_tokens, pos0);
  // One KV set for every row: the context keys, then all the block's own keys.
  std::vector<const float*> rows;
  for (size_t i = 0; i < context.size() / static_cast<size_t>(d); ++i) {
    rows.push_back(context.data() + i * d);
  }
  for (int64_t t = 0; t < num_tokens; ++t) rows.push_back(p.kv.data() + t * d);
  std::vector<float> out;
  out.reserve(static_cast<size_t>(num_tokens * c.hidden_size));
  for (int64_t t = 0; t < num_tokens; ++t) {
    const std::vector<float> y = AttendAndProject(
        c, aw, inv_freq, std::span<const float>(p.q).subspan(t * heads * d, heads * d), rows,
        pos0 + t);
    out.insert(out.end(), y.begin(), y.end());
  }
  return out;
}

}  // namespace dsv4::v4::reference
