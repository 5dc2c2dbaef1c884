#include "models/v32/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/check.h"
#include "core/kv_entry.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/indexer_fp8.h"
#include "kernels/cpu/linear.h"
#include "models/common/norm.h"
#include "models/common/rope.h"
#include "models/v32/indexer.h"
#include "models/v32/ops.h"

namespace dsv4::v32 {
namespace {

using checkpoint::ModelConfig;

// Batched projections of a chunk (everything that does not depend on other tokens' KV).
struct Projections {
  std::vector<BF16> q;      // [n, H, kv_lora + rope]: absorbed q_nope·W_UK ‖ RoPE'd q_rope
  std::vector<BF16> kv;     // [n, kv_lora + rope]: normed latent ‖ RoPE'd key (before packing)
  std::vector<uint8_t> iq;  // [n, nI, dI]: indexer query E4M3 codes
  std::vector<float> iw;    // [n, nI]: indexer head weights (IndexerHeadWeight)
  std::vector<BF16> ik;     // [n, dI]: indexer keys, normed, rotated (before FP8 packing)
};

// Where head h of token t lives in a [n, heads, ...] buffer: t·row_stride + h·head_stride.
struct HeadLayout {
  int64_t row_stride = 0;
  int64_t head_stride = 0;
};

// Per-head BF16 linears: for every head h, the n rows of head h in `in` through lin[h]
// (lin[h].in values each), written as head h of `out` (lin[h].out values each).
void PerHeadLinear(ThreadPool& pool, const std::vector<LinearWeight>& lin, const BF16* in,
                   HeadLayout in_layout, int64_t n, BF16* out, HeadLayout out_layout,
                   kernels::Workspace* ws) {
  const int64_t w_in = lin[0].in, w_out = lin[0].out;
  std::vector<BF16> rows(static_cast<size_t>(n * w_in)), res(static_cast<size_t>(n * w_out));
  for (size_t h = 0; h < lin.size(); ++h) {
    const int64_t hi = static_cast<int64_t>(h);
    for (int64_t t = 0; t < n; ++t) {
      std::copy_n(in + t * in_layout.row_stride + hi * in_layout.head_stride, w_in,
                  rows.data() + t * w_in);
    }
    kernels::Linear(pool, lin[h], rows.data(), n, res.data(), ws);
    for (int64_t t = 0; t < n; ++t) {
      std::copy_n(res.data() + t * w_out, w_out,
                  out + t * out_layout.row_stride + hi * out_layout.head_stride);
    }
  }
}

void ProjectQueryAndLatent(ThreadPool& pool, const ModelConfig& c, const AttentionWeights& w,
                           const MlaConstants& k, int64_t pos0, const BF16* x, int64_t n,
                           const BF16* cq, Projections* p, kernels::Workspace* ws) {
  const int64_t H = c.num_attention_heads, nope = c.qk_nope_head_dim, r = c.qk_rope_head_dim;
  const int64_t lat = c.kv_lora_rank, qk = nope + r, row = lat + r;
  const float eps = static_cast<float>(c.rms_norm_eps);
  std::vector<BF16> q(static_cast<size_t>(n * H * qk));
  kernels::Linear(pool, w.q_b, cq, n, q.data(), ws);
  p->q.resize(static_cast<size_t>(n * H * row));
  // Absorbed no-RoPE query: per head q_nope [n, nope] · W_UK,h -> [n, kv_lora] (BF16 weights,
  // FP32 accumulation, BF16 result: the reference's decode einsum with dequantised wkv_b).
  PerHeadLinear(pool, w.uk_t, q.data(), {H * qk, qk}, n, p->q.data(), {H * row, row}, ws);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t h = 0; h < H; ++h) {
      BF16* rope = p->q.data() + (t * H + h) * row + lat;
      std::copy_n(q.data() + (t * H + h) * qk + nope, r, rope);
      models::ApplyRopeInterleaved(k.inv_freq, rope, pos0 + t, false);
    }
  }
  p->kv.resize(static_cast<size_t>(n * row));
  kernels::Linear(pool, w.kv_a, x, n, p->kv.data(), ws);
  for (int64_t t = 0; t < n; ++t) {
    BF16* kv = p->kv.data() + t * row;
    models::RmsNorm(kv, w.kv_a_norm, lat, eps, kv);
    models::ApplyRopeInterleaved(k.inv_freq, kv + lat, pos0 + t, false);
  }
}

void ProjectIndexer(ThreadPool& pool, const ModelConfig& c, const IndexerWeights& w,
                    const MlaConstants& k, int64_t pos0, const BF16* x, int64_t n, const BF16* cq,
                    Projections* p, kernels::Workspace* ws) {
  const int64_t nI = c.index_n_heads, dI = c.index_head_dim;
  std::vector<BF16> iq(static_cast<size_t>(n * nI * dI));
  kernels::Linear(pool, w.wq_b, cq, n, iq.data(), ws);
  std::vector<float> wts(static_cast<size_t>(n * nI));
  kernels::LinearBf16InF32(pool, w.weights_proj, x, n, wts.data(), ws);
  p->iq.resize(iq.size());
  p->iw.resize(wts.size());
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t h = 0; h < nI; ++h) {
      BF16* head = iq.data() + (t * nI + h) * dI;
      RotateIndexerVector(k.inv_freq, pos0 + t, head, dI);
      const float qs = QuantizeIndexerQuery(head, dI, p->iq.data() + (t * nI + h) * dI);
      p->iw[t * nI + h] = IndexerHeadWeight(wts[t * nI + h], qs, nI, dI);
    }
  }
  p->ik.resize(static_cast<size_t>(n * dI));
  kernels::Linear(pool, w.wk, x, n, p->ik.data(), ws);
  for (int64_t t = 0; t < n; ++t) {
    BF16* key = p->ik.data() + t * dI;
    LayerNorm(key, w.k_norm_w, w.k_norm_b, dI, kIndexerNormEps, key);
    RotateIndexerVector(k.inv_freq, pos0 + t, key, dI);
  }
}

// Tokens per indexer scan in prefill: the keys are read and decoded once per group
// (kernels::IndexerTopKFp8Group). Any size gives the same bits.
constexpr int64_t kIndexerGroup = 32;

// Scratch of SelectTokens.
struct SelectScratch {
  std::vector<kernels::IndexerQueryFp8> queries;  // the scanned tokens' queries
  std::vector<int64_t> visible;                   // their candidate counts
  std::vector<const uint8_t*> key_pages;          // the page pointers of the keys
};

// The DSA selections of chunk rows [t0, t0 + count) (positions pos0 + t0 ...; spec §14.3 step
// 5): for each, causal candidates 0..pos, the top min(index_topk, pos + 1) by index score (ties
// to the lower position), ascending, into selected[0, count). Scored and filtered in one
// scan over the cache's packed FP8 keys in their pages for the whole group
// (kernels::IndexerTopKFp8Group: no decoded keys, no score array; each key scored on its own,
// so neither the page geometry nor the grouping changes a result). A token with no more
// candidates than index_topk keeps every one and is not scored (the same set). The tokens'
// keys must be in the cache.
void SelectTokens(ThreadPool& pool, const ModelConfig& c, const kv::V32SequenceCache& cache,
                  int64_t layer, const Projections& p, int64_t pos0, int64_t t0, int64_t count,
                  std::vector<int64_t>* selected, SelectScratch* scratch,
                  kernels::Workspace* ws) {
  const int64_t nI = c.index_n_heads, dI = c.index_head_dim;
  scratch->queries.clear();
  scratch->visible.clear();
  int64_t first_scanned = count;  // candidates grow with the position: the scanned are a suffix
  for (int64_t j = 0; j < count; ++j) {
    const int64_t t = t0 + j, visible = pos0 + t + 1;
    if (visible <= c.index_topk) {
      selected[j].resize(static_cast<size_t>(visible));
      for (int64_t i = 0; i < visible; ++i) selected[j][i] = i;
      continue;
    }
    first_scanned = std::min(first_scanned, j);
    scratch->queries.push_back({p.iq.data() + t * nI * dI, p.iw.data() + t * nI, nI, dI});
    scratch->visible.push_back(visible);
  }
  if (scratch->queries.empty()) return;
  cache.IndexerKeyPages(layer, scratch->visible.back(), &scratch->key_pages);
  const kernels::PagedRows rows{scratch->key_pages.data(), cache.keys_per_page(),
                                cache.indexer_key_bytes()};
  kernels::IndexerTopKFp8Group(pool, scratch->queries, scratch->visible, rows, c.index_topk,
                               selected + first_scanned, ws);
}

}  // namespace

MlaConstants MakeMlaConstants(const ModelConfig& c) {
  MlaConstants k;
  k.inv_freq = models::RopeInvFreq(c.qk_rope_head_dim, c.rope_theta, c.yarn);
  const double mscale = models::YarnMscale(c.yarn);
  k.softmax_scale = static_cast<float>(
      1.0 / std::sqrt(static_cast<double>(c.qk_nope_head_dim + c.qk_rope_head_dim)) * mscale *
      mscale);
  return k;
}

void AttentionForward(ThreadPool& pool, const ModelConfig& c, const LayerWeights& lw,
                      const MlaConstants& k, kv::V32SequenceCache& cache, int64_t pos0,
                      const BF16* x, int64_t n, BF16* out, kernels::Workspace* ws,
                      std::vector<std::vector<int64_t>>* selections) {
  const AttentionWeights& w = lw.attn;
  const int64_t H = c.num_attention_heads, r = c.qk_rope_head_dim, lat = c.kv_lora_rank;
  const int64_t row = lat + r, dI = c.index_head_dim, v = c.v_head_dim;
  const int64_t layer = lw.layer;
  DSV4_CHECK(cache.NumRecords(layer) == pos0);
  std::vector<BF16> cq(static_cast<size_t>(n * c.q_lora_rank));
  kernels::Linear(pool, w.q_a, x, n, cq.data(), ws);
  for (int64_t t = 0; t < n; ++t) {
    BF16* rowq = cq.data() + t * c.q_lora_rank;
    models::RmsNorm(rowq, w.q_a_norm, c.q_lora_rank, static_cast<float>(c.rms_norm_eps), rowq);
  }
  Projections p;
  ProjectQueryAndLatent(pool, c, w, k, pos0, x, n, cq.data(), &p, ws);
  ProjectIndexer(pool, c, w.indexer, k, pos0, x, n, cq.data(), &p, ws);

  // No sink in V3.2: a -inf sink logit adds exactly 0 to the softmax denominator.
  const std::vector<float> no_sink(static_cast<size_t>(H), -std::numeric_limits<float>::infinity());
  std::vector<BF16> o_lat(static_cast<size_t>(n * H * lat)), o_full(static_cast<size_t>(H * row));
  std::vector<float> kvset;
  std::vector<std::vector<int64_t>> selected(static_cast<size_t>(std::min(n, kIndexerGroup)));
  SelectScratch select_scratch;
  for (int64_t t0 = 0; t0 < n; t0 += kIndexerGroup) {
    // The group's records and keys first (token t reads only positions <= pos0 + t), then its
    // selections, then each token's attention.
    const int64_t count = std::min(kIndexerGroup, n - t0);
    for (int64_t t = t0; t < t0 + count; ++t) {
      const BF16* kv = p.kv.data() + t * row;
      EncodeMlaRecord(kv, lat, kv + lat, r, cache.AppendMlaRecord(layer));
      EncodeIndexerKeyFp8(p.ik.data() + t * dI, dI, cache.AppendIndexerKey(layer));
    }
    SelectTokens(pool, c, cache, layer, p, pos0, t0, count, selected.data(), &select_scratch, ws);
    for (int64_t t = t0; t < t0 + count; ++t) {
      const std::vector<int64_t>& sel = selected[t - t0];
      if (selections != nullptr) selections->push_back(sel);
      // Attention over the selected tokens' records (ascending positions), all heads sharing
      // them (MQA over [latent ‖ RoPE key], FP32 logits and softmax).
      const int64_t count_sel = static_cast<int64_t>(sel.size());
      kvset.resize(static_cast<size_t>(count_sel * row));
      for (int64_t j = 0; j < count_sel; ++j) {
        DecodeMlaRecord(cache.MlaRecord(layer, sel[j]), lat, r, kvset.data() + j * row);
      }
      kernels::SparseAttention(pool, p.q.data() + t * H * row, kvset.data(), count_sel,
                               no_sink.data(), H, row, k.softmax_scale, o_full.data(), ws);
      for (int64_t h = 0; h < H; ++h) {
        std::copy_n(o_full.data() + h * row, lat, o_lat.data() + (t * H + h) * lat);
      }
    }
  }

  // o_h = (Σ p·c^KV) W_UV,hᵀ per head, then o_proj over the heads' concatenation.
  std::vector<BF16> o(static_cast<size_t>(n * H * v));
  PerHeadLinear(pool, w.uv, o_lat.data(), {H * lat, lat}, n, o.data(), {H * v, v}, ws);
  kernels::Linear(pool, w.o_proj, o.data(), n, out, ws);
}

}  // namespace dsv4::v32
