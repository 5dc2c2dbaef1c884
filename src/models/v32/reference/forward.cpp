#include "models/v32/reference/forward.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <numeric>
#include <string>

#include "core/bf16.h"
#include "core/fp8.h"
#include "core/quant.h"
#include "checkpoint/checkpoint_layout.h"

namespace dsv4::v32::reference {
namespace {

using checkpoint::ModelConfig;
using checkpoint::TensorSource;
using Vec = std::vector<float>;

float Bf(float x) { return RoundBf16(x); }

// Every element of a BF16 / F32 / F8_E4M3 tensor as an FP32 value.
Result<Vec> Values(const TensorSource& src, const std::string& name, DType dtype,
                   std::vector<int64_t> shape) {
  DSV4_ASSIGN_OR_RETURN(checkpoint::TensorView v, src.Get(name, dtype, shape));
  Vec out(static_cast<size_t>(v.numel()));
  for (size_t i = 0; i < out.size(); ++i) {
    if (dtype == DType::kBF16) {
      BF16 b;
      std::memcpy(&b, v.bytes.data() + 2 * i, 2);
      out[i] = Bf16ToF32(b);
    } else if (dtype == DType::kF32) {
      std::memcpy(&out[i], v.bytes.data() + 4 * i, 4);
    } else {
      out[i] = E4M3ToF32(static_cast<uint8_t>(v.bytes[i]));
    }
  }
  return out;
}

// A linear layer as plain arrays: FP8 code values + F32 tile scales, or BF16 values.
struct Lin {
  int64_t out = 0, in = 0;
  bool fp8 = false;
  Vec w;      // [out, in]
  Vec scale;  // [ceil(out/128), ceil(in/128)] (fp8)
};

// A linear in the format its tensors are stored in (FP8 + F32 weight_scale_inv or BF16, per
// tensor: spec §14.1b).
Result<Lin> LoadLin(const ModelConfig& c, const TensorSource& src, const std::string& module,
                    int64_t out, int64_t in) {
  Lin l;
  l.out = out;
  l.in = in;
  const std::vector<checkpoint::LinearFormat> accepted =
      checkpoint::AcceptedLinearFormats(c, checkpoint::WeightKind::kDenseLinear);
  DSV4_ASSIGN_OR_RETURN(const checkpoint::LinearFormat format,
                        checkpoint::DetectLinearFormat(src, module, accepted));
  l.fp8 = format == checkpoint::LinearFormat::kFp8F32;
  if (!l.fp8) {
    DSV4_ASSIGN_OR_RETURN(l.w, Values(src, module + ".weight", DType::kBF16, {out, in}));
    return l;
  }
  DSV4_ASSIGN_OR_RETURN(l.w, Values(src, module + ".weight", DType::kF8E4M3, {out, in}));
  DSV4_ASSIGN_OR_RETURN(l.scale, Values(src, module + ".weight_scale_inv", DType::kF32,
                                        {(out + 127) / 128, (in + 127) / 128}));
  return l;
}

// §4.6: y = x Wᵀ. FP8: x quantised per 128 (act_quant), y_n = Σ_b (Σ_{k∈b} q_x·q_w)·s_x·S_w
// with FP32 sums; BF16: plain FP32 dot. Output rounded to BF16. x: BF16 values [in].
Vec Apply(const Lin& l, const float* x) {
  Vec y(static_cast<size_t>(l.out));
  if (!l.fp8) {
    for (int64_t n = 0; n < l.out; ++n) {
      float acc = 0.0f;
      for (int64_t k = 0; k < l.in; ++k) acc += x[k] * l.w[n * l.in + k];
      y[n] = Bf(acc);
    }
    return y;
  }
  std::vector<BF16> xb(static_cast<size_t>(l.in));
  for (int64_t k = 0; k < l.in; ++k) xb[k] = F32ToBf16(x[k]);
  std::vector<uint8_t> q(static_cast<size_t>(l.in));
  Vec sx(static_cast<size_t>(l.in / 128));
  ActQuantFp8(xb, 128, q, sx);
  const int64_t cols = (l.in + 127) / 128;
  for (int64_t n = 0; n < l.out; ++n) {
    float acc = 0.0f;
    for (int64_t b = 0; b < l.in / 128; ++b) {
      float partial = 0.0f;
      for (int64_t k = b * 128; k < (b + 1) * 128; ++k)
        partial += E4M3ToF32(q[k]) * l.w[n * l.in + k];
      acc += partial * sx[b] * l.scale[(n / 128) * cols + b];
    }
    y[n] = Bf(acc);
  }
  return y;
}

// FP32 matrix-vector product with an FP32-promoted weight [out, in] (router, weights_proj, head).
Vec ApplyF32(const Vec& w, int64_t out, int64_t in, const float* x) {
  Vec y(static_cast<size_t>(out));
  for (int64_t n = 0; n < out; ++n) {
    float acc = 0.0f;
    for (int64_t k = 0; k < in; ++k) acc += x[k] * w[n * in + k];
    y[n] = acc;
  }
  return y;
}

// §4.2 on FP32 input: bf16((x · rsqrt(mean(x²) + eps)) · w).
Vec RmsNorm(const float* x, const Vec& w, float eps) {
  const size_t n = w.size();
  float sq = 0.0f;
  for (size_t i = 0; i < n; ++i) sq += x[i] * x[i];
  const float r = 1.0f / std::sqrt(sq / static_cast<float>(n) + eps);
  Vec y(n);
  for (size_t i = 0; i < n; ++i) y[i] = Bf(x[i] * r * w[i]);
  return y;
}

// LayerNorm with weight and bias, biased variance, FP32; BF16 out.
Vec LayerNorm(const Vec& x, const Vec& w, const Vec& b, float eps) {
  const float n = static_cast<float>(x.size());
  float mean = 0.0f, var = 0.0f;
  for (float v : x) mean += v;
  mean /= n;
  for (float v : x) var += (v - mean) * (v - mean);
  const float r = 1.0f / std::sqrt(var / n + eps);
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = Bf((x[i] - mean) * r * w[i] + b[i]);
  return y;
}

// The YaRN-blended inverse frequencies (spec §4.3 construction with θ = rope_theta), FP32.
Vec InvFreq(const ModelConfig& c) {
  const int64_t r = c.qk_rope_head_dim;
  const checkpoint::YarnConfig& y = c.yarn;
  double lo = 0, hi = 0;
  if (y.enabled) {
    auto corr = [&](double rotations) {
      return r * std::log(y.original_max_position_embeddings / (rotations * 2 * M_PI)) /
             (2 * std::log(c.rope_theta));
    };
    lo = std::max(std::floor(corr(y.beta_fast)), 0.0);
    hi = std::min(std::ceil(corr(y.beta_slow)), static_cast<double>(r - 1));
    if (lo == hi) hi += 0.001;
  }
  Vec inv(static_cast<size_t>(r / 2));
  for (int64_t k = 0; k < r / 2; ++k) {
    const float base = 1.0f / std::pow(static_cast<float>(c.rope_theta),
                                       static_cast<float>(2 * k) / static_cast<float>(r));
    if (!y.enabled) {
      inv[k] = base;
      continue;
    }
    const float smooth = 1.0f - static_cast<float>(std::clamp((k - lo) / (hi - lo), 0.0, 1.0));
    inv[k] = base / static_cast<float>(y.factor) * (1.0f - smooth) + base * smooth;
  }
  return inv;
}

// Rotates x[i_k], x[j_k] by fp32(pos)·inv[k]: interleaved pairs (2k, 2k+1) for MLA,
// half-split pairs (k, k + r/2) for the indexer (spec §14.2, §14.3 step 2).
void Rope(const Vec& inv, int64_t pos, bool interleaved, float* x) {
  const size_t half = inv.size();
  for (size_t k = 0; k < half; ++k) {
    const float angle = static_cast<float>(pos) * inv[k];
    const float cs = std::cos(angle), sn = std::sin(angle);  // FP32, a complex64 table
    const size_t i = interleaved ? 2 * k : k, j = interleaved ? 2 * k + 1 : k + half;
    const float a = x[i], b = x[j];
    x[i] = Bf(a * cs - b * sn);
    x[j] = Bf(a * sn + b * cs);
  }
}

// §4.7 as a matrix product: y_i = bf16(Σ_j (−1)^popcount(i&j) x_j / sqrt(n)).
void Hadamard(float* x, int64_t n) {
  Vec y(static_cast<size_t>(n));
  const float scale = 1.0f / std::sqrt(static_cast<float>(n));
  for (int64_t i = 0; i < n; ++i) {
    float acc = 0.0f;
    for (int64_t j = 0; j < n; ++j) {
      acc += (std::popcount(static_cast<uint64_t>(i & j)) % 2 ? -x[j] : x[j]);
    }
    y[i] = Bf(acc * scale);
  }
  std::copy(y.begin(), y.end(), x);
}

// FP8 codes (as values) and the one power-of-two scale of a BF16 vector (act_quant with one
// block covering the whole vector).
float QuantOneScale(const float* x, int64_t n, float* codes) {
  std::vector<BF16> b(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) b[i] = F32ToBf16(x[i]);
  std::vector<uint8_t> q(static_cast<size_t>(n));
  float s = 0.0f;
  ActQuantFp8(b, static_cast<size_t>(n), q, {&s, 1});
  for (int64_t i = 0; i < n; ++i) codes[i] = E4M3ToF32(q[i]);
  return s;
}

struct Sublayer {
  const ModelConfig& c;
  const TensorSource& src;
  std::string prefix;  // "model.layers.<i>."
  int64_t T;
  float eps;
};

// §14.3 for every position: the top-k token set of each query (ascending).
Result<std::vector<std::vector<int64_t>>> Indexer(const Sublayer& s, const Vec& inv, const Vec& x,
                                                  const Vec& qr) {
  const ModelConfig& c = s.c;
  const int64_t D = c.hidden_size, Q = c.q_lora_rank, nI = c.index_n_heads, dI = c.index_head_dim;
  const std::string p = s.prefix + "self_attn.indexer.";
  DSV4_ASSIGN_OR_RETURN(Lin wq_b, LoadLin(c, s.src, p + "wq_b", nI * dI, Q));
  DSV4_ASSIGN_OR_RETURN(Lin wk, LoadLin(c, s.src, p + "wk", dI, D));
  DSV4_ASSIGN_OR_RETURN(Vec kn_w, Values(s.src, p + "k_norm.weight", DType::kBF16, {dI}));
  DSV4_ASSIGN_OR_RETURN(Vec kn_b, Values(s.src, p + "k_norm.bias", DType::kBF16, {dI}));
  DSV4_ASSIGN_OR_RETURN(Vec wp, Values(s.src, p + "weights_proj.weight", DType::kBF16, {nI, D}));
  const int64_t T = s.T;
  Vec qc(static_cast<size_t>(T * nI * dI)), qw(static_cast<size_t>(T * nI));
  Vec kc(static_cast<size_t>(T * dI)), ks(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) {
    Vec q = Apply(wq_b, qr.data() + t * Q);
    const Vec w = ApplyF32(wp, nI, D, x.data() + t * D);
    for (int64_t h = 0; h < nI; ++h) {
      float* head = q.data() + h * dI;
      Rope(inv, t, /*interleaved=*/false, head);
      Hadamard(head, dI);
      const float qs = QuantOneScale(head, dI, qc.data() + (t * nI + h) * dI);
      qw[t * nI + h] = w[h] * static_cast<float>(1.0 / std::sqrt(static_cast<double>(nI))) * qs *
                       static_cast<float>(1.0 / std::sqrt(static_cast<double>(dI)));
    }
    Vec k = LayerNorm(Apply(wk, x.data() + t * D), kn_w, kn_b, 1e-6f);  // §14.3: ε = 1e-6
    Rope(inv, t, false, k.data());
    Hadamard(k.data(), dI);
    ks[t] = QuantOneScale(k.data(), dI, kc.data() + t * dI);
  }
  std::vector<std::vector<int64_t>> selected(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) {
    Vec score(static_cast<size_t>(t + 1));
    for (int64_t j = 0; j <= t; ++j) {
      float total = 0.0f;
      for (int64_t h = 0; h < nI; ++h) {
        float dot = 0.0f;
        for (int64_t d = 0; d < dI; ++d) dot += qc[(t * nI + h) * dI + d] * kc[j * dI + d];
        total += std::max(dot, 0.0f) * qw[t * nI + h];
      }
      score[j] = total * ks[j];
    }
    std::vector<int64_t> order(static_cast<size_t>(t + 1));
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
      return score[a] != score[b] ? score[a] > score[b] : a < b;
    });
    order.resize(static_cast<size_t>(std::min<int64_t>(c.index_topk, t + 1)));
    std::sort(order.begin(), order.end());
    selected[t] = std::move(order);
  }
  return selected;
}

// §14.2 steps 1-3 for every position, MHA form: the queries, and the per-head keys and
// values up-projected from the cached (FP8-simulated) latent.
struct MlaTensors {
  Vec qr;      // BF16 values [T, Q]: the normed query latent (also the indexer's input)
  Vec q;       // BF16 values [T, H, nope + rope]: q_nope ‖ RoPE'd q_rope
  Vec k_rope;  // BF16 values [T, rope]: the RoPE'd shared key
  Vec kvb;     // BF16 values [T, H, nope + v]: k_nope ‖ v = kv_b_proj(latent) per head
};

Result<MlaTensors> ProjectMla(const Sublayer& s, const Vec& inv, const Vec& x) {
  const ModelConfig& c = s.c;
  const int64_t D = c.hidden_size, H = c.num_attention_heads, Q = c.q_lora_rank;
  const int64_t nope = c.qk_nope_head_dim, r = c.qk_rope_head_dim, v = c.v_head_dim;
  const int64_t lat = c.kv_lora_rank, qk = nope + r, T = s.T;
  const std::string p = s.prefix + "self_attn.";
  DSV4_ASSIGN_OR_RETURN(Lin q_a, LoadLin(c, s.src, p + "q_a_proj", Q, D));
  DSV4_ASSIGN_OR_RETURN(Vec q_norm, Values(s.src, p + "q_a_layernorm.weight", DType::kBF16, {Q}));
  DSV4_ASSIGN_OR_RETURN(Lin q_b, LoadLin(c, s.src, p + "q_b_proj", H * qk, Q));
  DSV4_ASSIGN_OR_RETURN(Lin kv_a, LoadLin(c, s.src, p + "kv_a_proj_with_mqa", lat + r, D));
  DSV4_ASSIGN_OR_RETURN(Vec kv_norm,
                        Values(s.src, p + "kv_a_layernorm.weight", DType::kBF16, {lat}));
  DSV4_ASSIGN_OR_RETURN(Lin kv_b, LoadLin(c, s.src, p + "kv_b_proj", H * (nope + v), lat));
  MlaTensors m;
  m.qr.resize(static_cast<size_t>(T * Q));
  m.q.resize(static_cast<size_t>(T * H * qk));
  m.k_rope.resize(static_cast<size_t>(T * r));
  m.kvb.resize(static_cast<size_t>(T * H * (nope + v)));
  for (int64_t t = 0; t < T; ++t) {
    const Vec a = Apply(q_a, x.data() + t * D);
    const Vec n = RmsNorm(a.data(), q_norm, s.eps);
    std::copy(n.begin(), n.end(), m.qr.begin() + t * Q);
    const Vec qt = Apply(q_b, n.data());
    std::copy(qt.begin(), qt.end(), m.q.begin() + t * H * qk);
    for (int64_t h = 0; h < H; ++h) Rope(inv, t, true, m.q.data() + (t * H + h) * qk + nope);
    Vec kv = Apply(kv_a, x.data() + t * D);
    Vec latent = RmsNorm(kv.data(), kv_norm, s.eps);
    // The corrected reference caches the latent FP8-simulated per 128 (pow2 scales).
    std::vector<BF16> lb(static_cast<size_t>(lat));
    for (int64_t i = 0; i < lat; ++i) lb[i] = F32ToBf16(latent[i]);
    Fp8SimulateInplace(lb, 128);
    for (int64_t i = 0; i < lat; ++i) latent[i] = Bf16ToF32(lb[i]);
    Rope(inv, t, true, kv.data() + lat);
    std::copy(kv.begin() + lat, kv.end(), m.k_rope.begin() + t * r);
    const Vec up = Apply(kv_b, latent.data());
    std::copy(up.begin(), up.end(), m.kvb.begin() + t * H * (nope + v));
  }
  return m;
}

// §14.2 in the MHA form for every position, each query attending to its DSA selection only
// (the index mask). x: BF16 values [T, D] (after input_layernorm). Returns the o_proj output,
// BF16 values [T, D].
Result<Vec> Attention(const Sublayer& s, const Vec& inv, const Vec& x, LayerTrace* trace) {
  const ModelConfig& c = s.c;
  const int64_t D = c.hidden_size, H = c.num_attention_heads, T = s.T;
  const int64_t nope = c.qk_nope_head_dim, r = c.qk_rope_head_dim, v = c.v_head_dim;
  const int64_t qk = nope + r, kv_row = H * (nope + v);
  DSV4_ASSIGN_OR_RETURN(MlaTensors m, ProjectMla(s, inv, x));
  DSV4_ASSIGN_OR_RETURN(auto selected, Indexer(s, inv, x, m.qr));
  DSV4_ASSIGN_OR_RETURN(Lin o_proj, LoadLin(c, s.src, s.prefix + "self_attn.o_proj", D, H * v));
  // λ = (nope + rope)^-0.5 · mscale², mscale = 0.1 · mscale_all_dim · ln(factor) + 1.
  const double mscale = c.yarn.enabled && c.yarn.factor > 1 && c.yarn.mscale_all_dim != 0
                            ? 0.1 * c.yarn.mscale_all_dim * std::log(c.yarn.factor) + 1.0
                            : 1.0;
  const float scale = static_cast<float>(mscale * mscale / std::sqrt(static_cast<double>(qk)));
  Vec out(static_cast<size_t>(T * D)), o(static_cast<size_t>(H * v));
  for (int64_t t = 0; t < T; ++t) {
    const std::vector<int64_t>& sel = selected[t];
    for (int64_t h = 0; h < H; ++h) {
      // Scores over [q_nope ‖ q_rope] · [k_nope ‖ k_rope], FP32 softmax, BF16 probabilities.
      const float* qh = m.q.data() + (t * H + h) * qk;
      Vec z(sel.size());
      for (size_t j = 0; j < sel.size(); ++j) {
        const float* kh = m.kvb.data() + sel[j] * kv_row + h * (nope + v);
        float dot = 0.0f;
        for (int64_t d = 0; d < nope; ++d) dot += qh[d] * kh[d];
        for (int64_t d = 0; d < r; ++d) dot += qh[nope + d] * m.k_rope[sel[j] * r + d];
        z[j] = dot * scale;
      }
      const float mx = *std::max_element(z.begin(), z.end());
      float den = 0.0f;
      for (float& e : z) den += (e = std::exp(e - mx));
      for (int64_t d = 0; d < v; ++d) {
        float acc = 0.0f;
        for (size_t j = 0; j < sel.size(); ++j) {
          acc += Bf(z[j] / den) * m.kvb[sel[j] * kv_row + h * (nope + v) + nope + d];
        }
        o[h * v + d] = Bf(acc);
      }
    }
    const Vec y = Apply(o_proj, o.data());
    std::copy(y.begin(), y.end(), out.begin() + t * D);
  }
  if (trace) trace->selected = std::move(selected);
  return out;
}

// SwiGLU: down(bf16(silu(gate x) · up x)).
Vec Swiglu(const Lin& gate, const Lin& up, const Lin& down, const float* x) {
  const Vec a = Apply(gate, x), b = Apply(up, x);
  Vec h(a.size());
  for (size_t i = 0; i < a.size(); ++i) h[i] = Bf(a[i] / (1.0f + std::exp(-a[i])) * b[i]);
  return Apply(down, h.data());
}

struct Ffn {
  Lin gate, up, down;
};
Result<Ffn> LoadFfn(const Sublayer& s, const std::string& p, int64_t inter) {
  Ffn f;
  DSV4_ASSIGN_OR_RETURN(f.gate, LoadLin(s.c, s.src, p + "gate_proj", inter, s.c.hidden_size));
  DSV4_ASSIGN_OR_RETURN(f.up, LoadLin(s.c, s.src, p + "up_proj", inter, s.c.hidden_size));
  DSV4_ASSIGN_OR_RETURN(f.down, LoadLin(s.c, s.src, p + "down_proj", s.c.hidden_size, inter));
  return f;
}

// §14.4 router of one token: the chosen experts (ascending) and their weights.
void Route(const ModelConfig& c, const Vec& logits, const Vec& bias, std::vector<int32_t>* ids,
           Vec* weights) {
  const int64_t E = c.n_routed_experts, G = c.n_group, per = E / G;
  Vec sig(static_cast<size_t>(E)), b(static_cast<size_t>(E));
  for (int64_t e = 0; e < E; ++e) {
    sig[e] = 1.0f / (1.0f + std::exp(-logits[e]));
    b[e] = sig[e] + bias[e];
  }
  // Group score: the sum of the group's two largest biased scores; keep the best topk_group.
  std::vector<std::pair<float, int64_t>> groups;
  for (int64_t g = 0; g < G; ++g) {
    Vec m(b.begin() + g * per, b.begin() + (g + 1) * per);
    std::sort(m.begin(), m.end(), std::greater<float>());
    groups.push_back({m[0] + m[1], g});
  }
  std::sort(groups.begin(), groups.end(), [](const auto& x, const auto& y) {
    return x.first != y.first ? x.first > y.first : x.second < y.second;
  });
  std::vector<int32_t> candidates;
  for (int64_t j = 0; j < c.topk_group; ++j) {
    for (int64_t e = groups[j].second * per; e < (groups[j].second + 1) * per; ++e) {
      candidates.push_back(static_cast<int32_t>(e));
    }
  }
  std::sort(candidates.begin(), candidates.end(),
            [&](int32_t x, int32_t y) { return b[x] != b[y] ? b[x] > b[y] : x < y; });
  candidates.resize(static_cast<size_t>(c.num_experts_per_tok));
  float sum = 0.0f;
  for (int32_t e : candidates) sum += sig[e];
  std::vector<std::pair<int32_t, float>> chosen;
  for (int32_t e : candidates) {
    const float w = c.norm_topk_prob ? sig[e] / sum : sig[e];
    chosen.push_back({e, w * static_cast<float>(c.routed_scaling_factor)});
  }
  std::sort(chosen.begin(), chosen.end());
  ids->clear();
  weights->clear();
  for (const auto& [e, w] : chosen) {
    ids->push_back(e);
    weights->push_back(w);
  }
}

// The FFN sublayer for every position (dense or MoE). x: BF16 values [T, D].
Result<Vec> FeedForward(const Sublayer& s, int64_t layer, const Vec& x, LayerTrace* trace) {
  const ModelConfig& c = s.c;
  const int64_t D = c.hidden_size, T = s.T, E = c.n_routed_experts;
  const std::string p = s.prefix + "mlp.";
  Vec out(static_cast<size_t>(T * D));
  if (layer < c.first_k_dense_replace) {
    DSV4_ASSIGN_OR_RETURN(Ffn f, LoadFfn(s, p, c.intermediate_size));
    for (int64_t t = 0; t < T; ++t) {
      const Vec y = Swiglu(f.gate, f.up, f.down, x.data() + t * D);
      std::copy(y.begin(), y.end(), out.begin() + t * D);
    }
    return out;
  }
  DSV4_ASSIGN_OR_RETURN(Vec gate, Values(s.src, p + "gate.weight", DType::kBF16, {E, D}));
  DSV4_ASSIGN_OR_RETURN(Vec bias,
                        Values(s.src, p + "gate.e_score_correction_bias", DType::kF32, {E}));
  std::vector<Ffn> experts;
  for (int64_t e = 0; e < E; ++e) {
    DSV4_ASSIGN_OR_RETURN(
        Ffn f, LoadFfn(s, p + "experts." + std::to_string(e) + ".", c.moe_intermediate_size));
    experts.push_back(std::move(f));
  }
  Ffn shared;
  if (c.n_shared_experts > 0) {
    DSV4_ASSIGN_OR_RETURN(
        shared, LoadFfn(s, p + "shared_experts.", c.moe_intermediate_size * c.n_shared_experts));
  }
  std::vector<int32_t> ids;
  Vec weights;
  for (int64_t t = 0; t < T; ++t) {
    const float* xt = x.data() + t * D;
    Route(c, ApplyF32(gate, E, D, xt), bias, &ids, &weights);
    Vec acc(static_cast<size_t>(D), 0.0f);
    for (size_t i = 0; i < ids.size(); ++i) {  // ascending expert id
      const Ffn& f = experts[ids[i]];
      const Vec y = Swiglu(f.gate, f.up, f.down, xt);
      for (int64_t d = 0; d < D; ++d) acc[d] += y[d] * weights[i];
    }
    if (c.n_shared_experts > 0) {
      const Vec y = Swiglu(shared.gate, shared.up, shared.down, xt);
      for (int64_t d = 0; d < D; ++d) acc[d] += y[d];
    }
    for (int64_t d = 0; d < D; ++d) out[t * D + d] = Bf(acc[d]);
    if (trace) trace->experts.push_back(ids);
  }
  return out;
}

}  // namespace

Result<std::vector<float>> Forward(const ModelConfig& c, const TensorSource& w,
                                   std::span<const int32_t> tokens, ForwardTrace* trace) {
  if (c.arch != checkpoint::Arch::kV32) {
    return Status::InvalidArgument(w.label() + ": the V3.2 reference needs a DeepSeek-V3.2 config");
  }
  const int64_t T = static_cast<int64_t>(tokens.size()), D = c.hidden_size, V = c.vocab_size;
  for (int64_t t = 0; t < T; ++t) {
    if (tokens[t] < 0 || tokens[t] >= V) {
      return Status::InvalidArgument("token " + std::to_string(tokens[t]) + " at position " +
                                     std::to_string(t) + " is outside the vocabulary [0, " +
                                     std::to_string(V) + ")");
    }
  }
  if (trace) trace->layers.assign(static_cast<size_t>(c.num_hidden_layers), {});
  if (T == 0) return Vec{};
  const float eps = static_cast<float>(c.rms_norm_eps);
  const Vec inv = InvFreq(c);
  DSV4_ASSIGN_OR_RETURN(Vec embed, Values(w, "model.embed_tokens.weight", DType::kBF16, {V, D}));
  // Residual stream h (BF16 values) and its unrounded FP32 sums (what the next norm sees).
  Vec h(static_cast<size_t>(T * D)), sum(static_cast<size_t>(T * D)), f;
  for (int64_t t = 0; t < T; ++t) {
    std::copy_n(embed.begin() + tokens[t] * D, D, h.begin() + t * D);
  }
  sum = h;
  auto add_residual = [&](const Vec& out) {
    for (size_t i = 0; i < h.size(); ++i) {
      sum[i] = out[i] + h[i];
      h[i] = Bf(sum[i]);
    }
  };
  auto norm_all = [&](const Vec& weight) {
    Vec u(static_cast<size_t>(T * D));
    for (int64_t t = 0; t < T; ++t) {
      const Vec y = RmsNorm(sum.data() + t * D, weight, eps);
      std::copy(y.begin(), y.end(), u.begin() + t * D);
    }
    return u;
  };
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const Sublayer s{c, w, "model.layers." + std::to_string(l) + ".", T, eps};
    LayerTrace* lt = trace ? &trace->layers[l] : nullptr;
    DSV4_ASSIGN_OR_RETURN(Vec in_norm,
                          Values(w, s.prefix + "input_layernorm.weight", DType::kBF16, {D}));
    DSV4_ASSIGN_OR_RETURN(
        Vec post_norm, Values(w, s.prefix + "post_attention_layernorm.weight", DType::kBF16, {D}));
    if (l > 0) add_residual(f);
    DSV4_ASSIGN_OR_RETURN(f, Attention(s, inv, norm_all(in_norm), lt));
    add_residual(f);
    DSV4_ASSIGN_OR_RETURN(f, FeedForward(s, l, norm_all(post_norm), lt));
  }
  add_residual(f);
  DSV4_ASSIGN_OR_RETURN(Vec norm, Values(w, "model.norm.weight", DType::kBF16, {D}));
  DSV4_ASSIGN_OR_RETURN(Vec head, Values(w, "lm_head.weight", DType::kBF16, {V, D}));
  const Vec hn = norm_all(norm);
  Vec logits(static_cast<size_t>(T * V));
  for (int64_t t = 0; t < T; ++t) {
    const Vec y = ApplyF32(head, V, D, hn.data() + t * D);
    std::copy(y.begin(), y.end(), logits.begin() + t * V);
  }
  return logits;
}

}  // namespace dsv4::v32::reference
