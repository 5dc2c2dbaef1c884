#include "bench/attention_weights.h"

#include <algorithm>
#include <cstring>

#include "core/check.h"
#include "core/rng.h"
#include "kernels/cpu/fp4_tiles.h"
#include "kernels/cpu/isa.h"

namespace dsv4::bench {
namespace {

using kernels::LinearKind;
using kernels::LinearWeight;
using checkpoint::ModelConfig;

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// E4M3 codes with random sign and mantissa and exponent field 5..8: magnitudes in
// [0.25, 3.75], times the 2^-7 block scale. Never a NaN code (exponent 15).
void FillFp8Codes(Rng& rng, uint8_t* p, int64_t n) {
  for (int64_t i = 0; i < n; i += 8) {
    uint64_t r = rng.NextU64();
    for (int64_t j = i; j < std::min(n, i + 8); ++j, r >>= 8) {
      const uint8_t b = static_cast<uint8_t>(r);
      p[j] = static_cast<uint8_t>((b & 0x80) | ((5 + ((b >> 3) & 3)) << 3) | (b & 7));
    }
  }
}

// BF16 values with random sign and mantissa in [2^-8, 2^-6).
void FillBf16(Rng& rng, BF16* p, int64_t n) {
  for (int64_t i = 0; i < n; i += 4) {
    uint64_t r = rng.NextU64();
    for (int64_t j = i; j < std::min(n, i + 4); ++j, r >>= 16) {
      const uint16_t b = static_cast<uint16_t>(r);
      p[j].bits = static_cast<uint16_t>((b & 0x8000) | ((119 + ((b >> 7) & 1)) << 7) | (b & 0x7F));
    }
  }
}

constexpr uint8_t kScaleE8M0 = 127 - 7;  // 2^-7
constexpr float kScaleF32 = 1.0f / 128.0f;

}  // namespace

uint8_t* WeightBuffers::Alloc(int64_t bytes) {
  buffers_.emplace_back(static_cast<size_t>(bytes));  // huge pages from 2 MiB, as the loaders'
  return reinterpret_cast<uint8_t*>(buffers_.back().data());
}

LinearWeight WeightBuffers::Fp8(int64_t out, int64_t in, bool f32_scales) {
  Rng rng(seed_ + buffers_.size() * 0x9E3779B97F4A7C15ull);
  LinearWeight w{LinearKind::kFp8Block, out, in};
  uint8_t* codes = Alloc(out * in);
  FillFp8Codes(rng, codes, out * in);
  w.codes = codes;
  const int64_t grid = CeilDiv(out, 128) * CeilDiv(in, 128);
  if (f32_scales) {
    float* s = reinterpret_cast<float*>(Alloc(grid * static_cast<int64_t>(sizeof(float))));
    for (int64_t i = 0; i < grid; ++i) s[i] = kScaleF32;
    w.scales_f32 = s;
    linear_bytes_ += out * in + grid * static_cast<int64_t>(sizeof(float));
    linear_macs_ += out * in;
  } else {
    uint8_t* s = Alloc(grid);
    std::memset(s, kScaleE8M0, static_cast<size_t>(grid));
    w.scales = s;
    linear_bytes_ += out * in + grid;
    linear_macs_ += out * in;
  }
  return w;
}

LinearWeight WeightBuffers::Bf16(int64_t out, int64_t in) {
  Rng rng(seed_ + buffers_.size() * 0x9E3779B97F4A7C15ull);
  BF16* b = reinterpret_cast<BF16*>(Alloc(out * in * static_cast<int64_t>(sizeof(BF16))));
  FillBf16(rng, b, out * in);
  linear_bytes_ += out * in * static_cast<int64_t>(sizeof(BF16));
  linear_macs_ += out * in;
  return LinearWeight{LinearKind::kBf16, out, in, nullptr, nullptr, b};
}

LinearWeight WeightBuffers::F32(int64_t out, int64_t in) {
  // The BF16 values the checkpoint holds, used as FP32 (kF32 over BF16 bytes, as the loaders
  // do).
  LinearWeight w = Bf16(out, in);
  w.kind = LinearKind::kF32;
  return w;
}

std::vector<LinearWeight> WeightBuffers::Fp4(int64_t n, int64_t out, int64_t in,
                                             ThreadPool* pool) {
  DSV4_CHECK(in % 32 == 0);
  const int64_t code_bytes = out * in / 2, scale_bytes = out * in / 32;
  const bool tiled =
      kernels::ActiveIsa() == kernels::Isa::kAvx512Bf16 && kernels::Fp4TilesSupported(out, in);
  const int64_t stored = tiled ? kernels::Fp4TilesBytes(out, in) : code_bytes;
  // Allocated (and seeded) in order here, filled in any order below.
  std::vector<LinearWeight> ws(static_cast<size_t>(n));
  std::vector<uint64_t> seeds(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    LinearWeight& w = ws[static_cast<size_t>(i)];
    w = LinearWeight{LinearKind::kFp4Row32, out, in};
    seeds[static_cast<size_t>(i)] = seed_ + buffers_.size() * 0x9E3779B97F4A7C15ull;
    (tiled ? w.fp4_tiles : w.codes) = Alloc(stored);
    w.scales = Alloc(scale_bytes);
    linear_bytes_ += stored + scale_bytes;
    linear_macs_ += out * in;
  }
  auto fill = [&](int64_t lo, int64_t hi) {
    std::unique_ptr<uint8_t[]> codes;
    if (tiled) codes.reset(new uint8_t[static_cast<size_t>(code_bytes)]);
    for (int64_t i = lo; i < hi; ++i) {
      LinearWeight& w = ws[static_cast<size_t>(i)];
      Rng rng(seeds[static_cast<size_t>(i)]);
      // Any byte is two valid E2M1 codes (E2M1 has no NaN or infinity).
      uint8_t* p = tiled ? codes.get() : const_cast<uint8_t*>(w.codes);
      for (int64_t j = 0; j < code_bytes; j += 8) {
        const uint64_t r = rng.NextU64();
        std::memcpy(p + j, &r, static_cast<size_t>(std::min<int64_t>(8, code_bytes - j)));
      }
      if (tiled) kernels::RepackFp4Tiles(p, out, in, const_cast<uint8_t*>(w.fp4_tiles));
      std::memset(const_cast<uint8_t*>(w.scales), 127 - 8, static_cast<size_t>(scale_bytes));
    }
  };
  if (pool != nullptr) {
    pool->ParallelFor(n, 1, fill);
  } else {
    fill(0, n);
  }
  return ws;
}

LinearWeight WeightBuffers::F32Values(int64_t out, int64_t in, float bound) {
  LinearWeight w{LinearKind::kF32, out, in};
  w.f32 = Vector(out * in, -bound, bound);
  linear_bytes_ += out * in * static_cast<int64_t>(sizeof(float));
  linear_macs_ += out * in;
  return w;
}

const float* WeightBuffers::Vector(int64_t n, float lo, float hi) {
  Rng rng(seed_ + buffers_.size() * 0x9E3779B97F4A7C15ull);
  float* f = reinterpret_cast<float*>(Alloc(n * static_cast<int64_t>(sizeof(float))));
  for (int64_t i = 0; i < n; ++i) f[i] = static_cast<float>(rng.Uniform(lo, hi));
  return f;
}

namespace {

// The attention fields of layer `layer` of `c` into w, from b.
void FillV4Attention(const ModelConfig& c, int64_t layer, WeightBuffers& b, v4::LayerWeights& w) {
  DSV4_CHECK(c.arch == checkpoint::Arch::kV4);
  const int64_t D = c.hidden_size, H = c.num_attention_heads, d = c.head_dim;
  const int64_t Q = c.q_lora_rank, G = c.o_groups, R = c.o_lora_rank;
  w.layer = layer;
  w.kind = c.layer_kind(layer);
  w.attn_sink = b.Vector(H, -1.0f, 1.0f);
  w.wq_a = b.Fp8(Q, D, false);
  w.q_norm = b.Vector(Q, 0.9f, 1.1f);
  w.wq_b = b.Fp8(H * d, Q, false);
  w.wkv = b.Fp8(d, D, false);
  w.kv_norm = b.Vector(d, 0.9f, 1.1f);
  w.wo_a = b.Fp8(G * R, H * d / G, false);  // used as BF16 (spec §6.5), as the loader does
  w.wo_a.kind = LinearKind::kFp8AsBf16;
  w.wo_b = b.Fp8(D, G * R, false);
  auto compressor = [&](int64_t m, int64_t width) {
    v4::CompressorWeights cw;
    const int64_t kappa = m == 4 ? 2 : 1;
    cw.ratio = m;
    cw.width = width;
    cw.wkv = b.F32(kappa * width, D);
    cw.wgate = b.F32(kappa * width, D);
    cw.ape = b.Vector(m * kappa * width, -0.5f, 0.5f);
    cw.norm = b.Vector(width, 0.9f, 1.1f);
    return cw;
  };
  const int64_t m = c.ratio(layer);
  if (m > 0) w.compressor = compressor(m, d);
  if (m == 4) {
    const int64_t nI = c.index_n_heads, dI = c.index_head_dim;
    w.indexer.wq_b = b.Fp8(nI * dI, Q, false);
    w.indexer.weights_proj = b.Bf16(nI, D);
    w.indexer.compressor = compressor(4, dI);
  }
}

}  // namespace

std::unique_ptr<V4AttentionWeights> MakeV4AttentionWeights(const ModelConfig& c, int64_t layer,
                                                           uint64_t seed) {
  auto a = std::make_unique<V4AttentionWeights>(seed ^ (static_cast<uint64_t>(layer) << 32));
  FillV4Attention(c, layer, a->buffers, a->w);
  return a;
}

std::unique_ptr<V4BlockWeights> MakeV4BlockWeights(const ModelConfig& c, int64_t layer,
                                                   uint64_t seed, ThreadPool* pool) {
  auto a = std::make_unique<V4BlockWeights>(seed ^ (static_cast<uint64_t>(layer) << 32));
  WeightBuffers& b = a->buffers;
  v4::LayerWeights& w = a->w;
  FillV4Attention(c, layer, b, w);
  a->attention_bytes = b.linear_bytes();
  a->attention_macs = b.linear_macs();
  const int64_t D = c.hidden_size, hc = c.hc_mult, mix = (2 + hc) * hc;
  const int64_t E = c.n_routed_experts, I = c.moe_intermediate_size, k = c.num_experts_per_tok;
  w.attn_norm = b.Vector(D, 0.9f, 1.1f);
  w.ffn_norm = b.Vector(D, 0.9f, 1.1f);
  for (v4::MhcWeights* m : {&w.hc_attn, &w.hc_ffn}) {
    m->fn = b.F32Values(mix, hc * D, 0.01f);
    m->base = b.Vector(mix, -1.0f, 1.0f);
    m->scale = b.Vector(3, 0.5f, 1.5f);
  }
  w.gate = b.F32(E, D);
  if (c.is_hash_layer(layer)) {
    Rng rng(seed + 17);
    a->tid2eid.resize(static_cast<size_t>(c.vocab_size * k));
    for (int32_t& e : a->tid2eid) e = static_cast<int32_t>(rng.Below(static_cast<uint64_t>(E)));
    w.tid2eid = a->tid2eid.data();
  } else {
    w.gate_bias = b.Vector(E, -0.01f, 0.01f);
  }
  w.has_shared = c.n_shared_experts > 0;
  if (w.has_shared) {
    const int64_t Is = I * c.n_shared_experts;
    w.shared = {b.Fp8(Is, D, false), b.Fp8(Is, D, false), b.Fp8(D, Is, false)};
  }
  a->dense_bytes = b.linear_bytes();
  a->dense_macs = b.linear_macs();
  w.experts.resize(static_cast<size_t>(E));
  const std::vector<LinearWeight> up = b.Fp4(2 * E, I, D, pool), down = b.Fp4(E, D, I, pool);
  for (int64_t e = 0; e < E; ++e) {
    w.experts[static_cast<size_t>(e)] = {up[static_cast<size_t>(2 * e)],
                                         up[static_cast<size_t>(2 * e + 1)],
                                         down[static_cast<size_t>(e)]};
  }
  a->expert_bytes = (b.linear_bytes() - a->dense_bytes) / std::max<int64_t>(E, 1);
  a->expert_macs = (b.linear_macs() - a->dense_macs) / std::max<int64_t>(E, 1);
  return a;
}

std::unique_ptr<V32AttentionWeights> MakeV32AttentionWeights(const ModelConfig& c, int64_t layer,
                                                             uint64_t seed) {
  DSV4_CHECK(c.arch == checkpoint::Arch::kV32);
  auto a = std::make_unique<V32AttentionWeights>(seed ^ (static_cast<uint64_t>(layer) << 32));
  WeightBuffers& b = a->buffers;
  v32::LayerWeights& lw = a->w;
  v32::AttentionWeights& w = lw.attn;
  const int64_t D = c.hidden_size, H = c.num_attention_heads, Q = c.q_lora_rank;
  const int64_t nope = c.qk_nope_head_dim, rope = c.qk_rope_head_dim, v = c.v_head_dim;
  const int64_t lat = c.kv_lora_rank;
  lw.layer = layer;
  lw.dense = c.is_dense_layer(layer);
  w.q_a = b.Fp8(Q, D, true);
  w.q_a_norm = b.Vector(Q, 0.9f, 1.1f);
  w.q_b = b.Fp8(H * (nope + rope), Q, true);
  w.kv_a = b.Fp8(lat + rope, D, true);
  w.kv_a_norm = b.Vector(lat, 0.9f, 1.1f);
  w.o_proj = b.Fp8(D, H * v, true);
  // kv_b_proj, dequantised and split per head as the loader does: W_UK,hᵀ [lat, nope] and
  // W_UV,h [v, lat].
  const BF16* uk_t = b.Bf16(H * lat, nope).bf16;
  const BF16* uv = b.Bf16(H * v, lat).bf16;
  for (int64_t h = 0; h < H; ++h) {
    w.uk_t.push_back({LinearKind::kBf16, lat, nope, nullptr, nullptr, uk_t + h * lat * nope});
    w.uv.push_back({LinearKind::kBf16, v, lat, nullptr, nullptr, uv + h * v * lat});
  }
  const int64_t nI = c.index_n_heads, dI = c.index_head_dim;
  w.indexer.wq_b = b.Fp8(nI * dI, Q, true);
  w.indexer.wk = b.Fp8(dI, D, true);
  w.indexer.k_norm_w = b.Vector(dI, 0.9f, 1.1f);
  w.indexer.k_norm_b = b.Vector(dI, -0.1f, 0.1f);
  w.indexer.weights_proj = b.F32(nI, D);
  return a;
}

}  // namespace dsv4::bench
