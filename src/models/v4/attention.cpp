#include "models/v4/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/kv_entry.h"
#include "core/quant.h"
#include "core/grow.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/indexer.h"
#include "kernels/cpu/linear.h"
#include "models/common/hadamard.h"
#include "models/common/norm.h"
#include "models/v4/compressor.h"
#include "models/v4/ops.h"

namespace dsv4::v4 {
namespace {

using checkpoint::LayerKind;
using checkpoint::ModelConfig;

}  // namespace

void ProjectWindowKeys(ThreadPool& pool, const ModelConfig& c, const LayerWeights& w,
                       const RopeTable& rope, const int64_t* positions, const BF16* x, int64_t n,
                       AttentionWorkspace* p) {
  const int64_t d = c.head_dim, r = c.qk_rope_head_dim;
  const float eps = static_cast<float>(c.rms_norm_eps);
  GrowTo(p->kv, n * d);
  kernels::Linear(pool, w.wkv, x, n, p->kv.data(), &p->kernels);
  for (int64_t t = 0; t < n; ++t) {
    BF16* k = p->kv.data() + t * d;
    models::RmsNorm(k, w.kv_norm, d, eps, k);
    rope.Apply(k + d - r, positions[t], false);
  }
}

void ProjectAttention(ThreadPool& pool, const ModelConfig& c, const LayerWeights& w,
                      const RopeTable& rope, const int64_t* positions, const BF16* x, int64_t n,
                      AttentionWorkspace* p) {
  const int64_t H = c.num_attention_heads, d = c.head_dim, r = c.qk_rope_head_dim;
  const float eps = static_cast<float>(c.rms_norm_eps);
  std::vector<BF16>& cq = p->cq;
  GrowTo(cq, n * c.q_lora_rank);
  kernels::Linear(pool, w.wq_a, x, n, cq.data(), &p->kernels);
  for (int64_t t = 0; t < n; ++t) {
    BF16* row = cq.data() + t * c.q_lora_rank;
    models::RmsNorm(row, w.q_norm, c.q_lora_rank, eps, row);
  }
  GrowTo(p->q, n * H * d);
  kernels::Linear(pool, w.wq_b, cq.data(), n, p->q.data(), &p->kernels);
  ProjectWindowKeys(pool, c, w, rope, positions, x, n, p);
  for (int64_t t = 0; t < n; ++t) {
    // Per head: norm, then rotation (heads are independent; cos/sin formed once per token).
    for (int64_t h = 0; h < H; ++h) HeadRmsNormBf16(p->q.data() + (t * H + h) * d, d, eps);
    rope.ApplyHeads(p->q.data() + t * H * d + d - r, H, d, positions[t], false);
  }
  if (w.kind == LayerKind::kSwa) return;
  const int64_t row = w.compressor.wkv.out;
  GrowTo(p->cv, n * row);
  GrowTo(p->cz, n * row);
  kernels::LinearBf16InF32(pool, w.compressor.wkv, x, n, p->cv.data(), &p->kernels);
  kernels::LinearBf16InF32(pool, w.compressor.wgate, x, n, p->cz.data(), &p->kernels);
  if (w.kind != LayerKind::kCsa) return;
  const IndexerWeights& iw = w.indexer;
  const int64_t nI = c.index_n_heads, dI = c.index_head_dim;
  GrowTo(p->iq, n * nI * dI);
  kernels::Linear(pool, iw.wq_b, cq.data(), n, p->iq.data(), &p->kernels);
  for (int64_t t = 0; t < n; ++t) {
    rope.ApplyHeads(p->iq.data() + t * nI * dI + dI - r, nI, dI, positions[t], false);
    for (int64_t h = 0; h < nI; ++h) {
      BF16* head = p->iq.data() + (t * nI + h) * dI;
      models::Hadamard(head, dI);
      Fp4SimulateInplace({head, static_cast<size_t>(dI)});
    }
  }
  GrowTo(p->iw, n * nI);
  kernels::Linear(pool, iw.weights_proj, x, n, p->iw.data(), &p->kernels);
  const float wscale = 1.0f / std::sqrt(static_cast<float>(dI)) / std::sqrt(static_cast<float>(nI));
  for (int64_t i = 0; i < n * nI; ++i) p->iw[i] = F32ToBf16(Bf16ToF32(p->iw[i]) * wscale);
  const int64_t irow = iw.compressor.wkv.out;
  GrowTo(p->icv, n * irow);
  GrowTo(p->icz, n * irow);
  kernels::LinearBf16InF32(pool, iw.compressor.wkv, x, n, p->icv.data(), &p->kernels);
  kernels::LinearBf16InF32(pool, iw.compressor.wgate, x, n, p->icz.data(), &p->kernels);
}

namespace {

// Runs one compressor step for token `pos`; on emission post-processes the pooled entry
// (spec §7.5: BF16, norm, RoPE at m·i, then FP8 or Hadamard+FP4) and appends it to the cache.
// Scratch: ws->gate, pooled, entry.
void CompressToken(const ModelConfig& c, const CompressorWeights& cw, const RopeTable& rope,
                   kv::CompressorState& state, const float* v, const float* z, int64_t pos,
                   bool indexer, kv::V4SequenceCache& cache, int64_t layer, AttendScratch* ws) {
  const int64_t row = state.row_width(), m = cw.ratio, width = cw.width;
  float* zb = GrowTo(ws->gate, row);
  float* pooled = GrowTo(ws->pooled, width);
  BF16* e = GrowTo(ws->entry, width);
  const float* ape = cw.ape + (pos % m) * row;
  for (int64_t f = 0; f < row; ++f) zb[f] = z[f] + ape[f];
  if (!CompressorStep(state, v, zb, pos, pooled)) return;
  for (int64_t f = 0; f < width; ++f) e[f] = F32ToBf16(pooled[f]);
  models::RmsNorm(e, cw.norm, width, static_cast<float>(c.rms_norm_eps), e);
  const int64_t r = c.qk_rope_head_dim;
  rope.Apply(e + width - r, m * (pos / m), false);
  if (indexer) {
    models::Hadamard(e, width);
    EncodeIndexerKeyFp4(e, width, cache.AppendIndexerKey(layer));
  } else {
    EncodeKvEntry(e, width - r, r, cache.AppendEntry(layer));
  }
}

// Tokens per indexer scan in prefill: the keys are read and decoded once per group
// (kernels::IndexerTopKFp4Group). Any size gives the same bits.
constexpr int64_t kIndexerGroup = 32;

// CSA (spec §8) for rows [t0, t0 + count) of slice s: the indexer compressor over those tokens
// (appending a key every 4; it reads and writes only its own state, State(layer, 1), so running
// it ahead of the attention compressor and the window writes changes nothing), then every
// token's top-k of the keys it sees ((pos + 1) / 4) in one grouped scan. Writes
// ws->selections[0, count); reads the projections in p.
void SelectCsaEntries(ThreadPool& pool, const ModelConfig& c, const LayerWeights& w,
                      const RopeTable& rope, const SeqSlice& s, int64_t t0, int64_t count,
                      const AttentionWorkspace& p, AttendScratch* ws) {
  const IndexerWeights& iw = w.indexer;
  const int64_t layer = w.layer, irow = iw.compressor.wkv.out;
  const int64_t nI = c.index_n_heads, dI = c.index_head_dim;
  kv::V4SequenceCache& cache = *s.cache;
  kernels::IndexerQuery* queries = GrowTo(ws->queries, count);
  int64_t* visible = GrowTo(ws->visible, count);
  for (int64_t j = 0; j < count; ++j) {
    const int64_t t = t0 + j, pos = s.pos0 + (t - s.row0);
    CompressToken(c, iw.compressor, rope, cache.State(layer, 1), p.icv.data() + t * irow,
                  p.icz.data() + t * irow, pos, true, cache, layer, ws);
    queries[j] = {p.iq.data() + t * nI * dI, p.iw.data() + t * nI, nI, dI};
    visible[j] = (pos + 1) / 4;
  }
  // One pointer per page of indexer keys: the scan reads the packed keys in place. (Without
  // the component, one "page" per key is still right, just slower.)
  const kv::ComponentLayout* key_layout = cache.layout().Find(kv::Component::kCsaIndexerKeys);
  const int64_t keys_per_page = key_layout != nullptr ? key_layout->entries_per_page : 1;
  std::vector<const uint8_t*>& key_pages = ws->key_pages;
  const int64_t pages = (visible[count - 1] + keys_per_page - 1) / keys_per_page;
  for (int64_t pg = static_cast<int64_t>(key_pages.size()); pg < pages; ++pg) {
    key_pages.push_back(cache.IndexerKey(layer, pg * keys_per_page));
  }
  const kernels::PagedRows keys{key_pages.data(), keys_per_page, cache.indexer_key_bytes()};
  kernels::IndexerTopKFp4Group(pool, {queries, static_cast<size_t>(count)},
                               {visible, static_cast<size_t>(count)}, keys, c.index_topk,
                               GrowTo(ws->selections, count), &ws->kernels);
}

// Runs the tokens of one sequence (rows [s.row0, s.row0 + s.n)) in position order: cache
// writes, compressors, indexer, sparse attention, from the projections in p; writes rows
// [s.row0, s.row0 + s.n) of o BF16 [rows, H*d]. CSA layers run kIndexerGroup tokens at a time:
// the group's indexer selections first (SelectCsaEntries), then each token's window write,
// attention compressor step and attention, as one token at a time would. Touches only s's
// cache and *ws, so several sequences may run at once, each on its own pool and scratch.
void AttendSequence(ThreadPool& pool, const ModelConfig& c, const LayerWeights& w,
                    const RopeTable& rope, const SeqSlice& s, const AttentionWorkspace& p,
                    AttendScratch* ws, BF16* o) {
  const int64_t H = c.num_attention_heads, d = c.head_dim, r = c.qk_rope_head_dim;
  const int64_t layer = w.layer, W = c.sliding_window;
  kv::V4SequenceCache& cache = *s.cache;
  std::vector<const uint8_t*>& entries = ws->entries;  // the token's KV set
  ws->key_pages.clear();
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  for (int64_t t0 = s.row0; t0 < s.row0 + s.n; t0 += kIndexerGroup) {
    const int64_t count = std::min(kIndexerGroup, s.row0 + s.n - t0);
    if (w.kind == LayerKind::kCsa) SelectCsaEntries(pool, c, w, rope, s, t0, count, p, ws);
    for (int64_t t = t0; t < t0 + count; ++t) {
      const int64_t pos = s.pos0 + (t - s.row0);
      EncodeKvEntry(p.kv.data() + t * d, d - r, r, cache.WindowRow(layer, pos));
      const std::vector<int64_t>* selected = &ws->selected;  // compressed entries, ascending
      ws->selected.clear();
      if (w.kind != LayerKind::kSwa) {
        const int64_t row = w.compressor.wkv.out;
        CompressToken(c, w.compressor, rope, cache.State(layer, 0), p.cv.data() + t * row,
                      p.cz.data() + t * row, pos, false, cache, layer, ws);
        if (w.kind == LayerKind::kCsa) selected = &ws->selections[t - t0];
        if (w.kind == LayerKind::kHca) {
          ws->selected.resize(static_cast<size_t>((pos + 1) / c.ratio(layer)));
          for (size_t i = 0; i < ws->selected.size(); ++i) ws->selected[i] = static_cast<int64_t>(i);
        }
      }
      // KV set in a canonical order: window positions ascending, then compressed entries
      // ascending (spec §9: one softmax over both, with the sink). The kernel reads the packed
      // entries in place.
      const int64_t first = std::max<int64_t>(0, pos - W + 1);
      entries.clear();
      for (int64_t q = first; q <= pos; ++q) entries.push_back(cache.WindowRow(layer, q));
      for (int64_t i : *selected) entries.push_back(cache.Entry(layer, i));
      BF16* oh = o + t * H * d;
      kernels::SparseAttentionPacked(pool, p.q.data() + t * H * d, entries.data(),
                                     static_cast<int64_t>(entries.size()), w.attn_sink, H, d - r,
                                     r, scale, oh, &ws->kernels);
      rope.ApplyHeads(oh + d - r, H, d, pos, true);
    }
  }
}

// Work of attending slice s, in entry reads x heads (for scheduling only): per token the
// window, and the compressed entries it attends to (CSA: the top-k, plus the indexer's keys at
// about an eighth of an entry's cost each; HCA: every compressed entry).
double AttendCost(const ModelConfig& c, const LayerWeights& w, const SeqSlice& s) {
  const double pos = static_cast<double>(s.pos0 + s.n);  // the last token's, for every token
  double per_token = std::min<double>(pos, static_cast<double>(c.sliding_window));
  if (w.kind == LayerKind::kCsa) {
    const double keys = pos / static_cast<double>(c.ratio(w.layer));
    per_token += std::min<double>(keys, static_cast<double>(c.index_topk)) + keys / 8;
  } else if (w.kind == LayerKind::kHca) {
    per_token += pos / static_cast<double>(c.ratio(w.layer));
  }
  return per_token * static_cast<double>(s.n);
}

// Attends every sequence of the batch. With one pool thread or one sequence, in order on the
// whole pool. Else, when the sequences' work splits evenly enough over the threads (the
// greedy costliest-first schedule ends within 15% of the even share), each pool thread takes
// whole sequences, costliest first, on a one-thread pool of its own: no hand-off per kernel
// and no entry decoded by two threads. Every kernel's result does not depend on its pool's
// thread count, so both give the same bits.
void AttendSequences(ThreadPool& pool, const ModelConfig& c, const LayerWeights& w,
                     const RopeTable& rope, std::span<const SeqSlice> seqs, AttentionWorkspace* ws) {
  const int threads = pool.num_threads();
  const int64_t m = static_cast<int64_t>(seqs.size());
  bool parallel = threads > 1 && m > 1;
  std::vector<int64_t>& order = ws->seq_order;
  if (parallel) {
    order.resize(static_cast<size_t>(m));
    std::vector<double>& cost = ws->seq_cost;
    cost.resize(static_cast<size_t>(m));
    double total = 0;
    for (int64_t i = 0; i < m; ++i) total += cost[i] = AttendCost(c, w, seqs[i]);
    for (int64_t i = 0; i < m; ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return cost[a] > cost[b]; });
    std::vector<double>& load = ws->seq_load;
    load.assign(static_cast<size_t>(threads), 0.0);
    for (int64_t i : order) *std::min_element(load.begin(), load.end()) += cost[i];
    parallel = *std::max_element(load.begin(), load.end()) <= 1.15 * total / threads;
  }
  if (!parallel) {
    for (const SeqSlice& s : seqs) AttendSequence(pool, c, w, rope, s, *ws, &ws->attend, ws->o.data());
    return;
  }
  while (static_cast<int>(ws->seq_pools.size()) < threads) {
    ws->seq_pools.push_back(std::make_unique<ThreadPool>(1));
    ws->seq_scratch.push_back(std::make_unique<AttendScratch>());
  }
  pool.ParallelForClaimed(m, [&](int64_t i, int t) {
    AttendSequence(*ws->seq_pools[t], c, w, rope, seqs[order[i]], *ws, ws->seq_scratch[t].get(),
                   ws->o.data());
  });
}

}  // namespace

void AttentionForward(ThreadPool& pool, const ModelConfig& c, const LayerWeights& w,
                      const RopeTable& rope, std::span<const SeqSlice> seqs, const BF16* x,
                      int64_t n, BF16* out, AttentionWorkspace* ws) {
  const int64_t H = c.num_attention_heads, d = c.head_dim;
  GrowTo(ws->positions, n);
  for (const SeqSlice& s : seqs) {
    for (int64_t t = 0; t < s.n; ++t) ws->positions[s.row0 + t] = s.pos0 + t;
  }
  ProjectAttention(pool, c, w, rope, ws->positions.data(), x, n, ws);
  GrowTo(ws->o, n * H * d);
  AttendSequences(pool, c, w, rope, seqs, ws);
  AttentionOutput(pool, c, w, n, out, ws);
}

void AttentionOutput(ThreadPool& pool, const ModelConfig& c, const LayerWeights& w, int64_t n,
                     BF16* out, AttentionWorkspace* ws) {
  const int64_t H = c.num_attention_heads, d = c.head_dim;
  // Grouped low-rank output projection (§6.5): group g = heads [g*H/G, (g+1)*H/G).
  const int64_t G = c.o_groups, R = c.o_lora_rank, gin = H * d / G;
  GrowTo(ws->group_in, n * gin);
  GrowTo(ws->group_out, n * R);
  GrowTo(ws->z, n * G * R);
  BF16 *gx = ws->group_in.data(), *zg = ws->group_out.data(), *z = ws->z.data();
  for (int64_t g = 0; g < G; ++g) {
    for (int64_t t = 0; t < n; ++t) {
      std::copy_n(ws->o.data() + t * H * d + g * gin, gin, gx + t * gin);
    }
    kernels::LinearWeight wg = w.wo_a;  // rows [g*R, (g+1)*R): R is a multiple of 128 for FP8
    wg.out = R;
    if (wg.kind == kernels::LinearKind::kFp8AsBf16) {
      wg.codes = w.wo_a.codes + g * R * gin;
      wg.scales = w.wo_a.scales + (g * R / 128) * ((gin + 127) / 128);
    } else {
      wg.bf16 = w.wo_a.bf16 + g * R * gin;
    }
    kernels::Linear(pool, wg, gx, n, zg, &ws->kernels);
    for (int64_t t = 0; t < n; ++t) std::copy_n(zg + t * R, R, z + t * G * R + g * R);
  }
  kernels::Linear(pool, w.wo_b, z, n, out, &ws->kernels);
}

}  // namespace dsv4::v4
