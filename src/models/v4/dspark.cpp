#include "models/v4/dspark.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "core/grow.h"
#include "core/kv_entry.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/linear.h"
#include "models/common/norm.h"
#include "models/common/sequence_check.h"
#include "models/v4/attention.h"
#include "models/v4/moe_parallel.h"

namespace dsv4::v4 {

Dspark::Dspark(const Model& target, const DsparkWeights& w) : target_(target), weights_(w) {
  const checkpoint::ModelConfig& c = target.config();
  for (size_t b = 0; b < w.blocks.size(); ++b) {
    DSV4_CHECK(w.blocks[b].kind == checkpoint::LayerKind::kSwa);
    blocks_.push_back(w.blocks[b]);
    blocks_.back().layer = static_cast<int64_t>(b);
    rope_.push_back(RopeTable::ForLayer(c, c.num_hidden_layers + static_cast<int64_t>(b)));
  }
}

int64_t Dspark::hidden_width() const {
  return static_cast<int64_t>(config().dspark.target_layer_ids.size()) * config().hidden_size;
}

checkpoint::ModelConfig Dspark::RingConfig(int64_t history) const {
  DSV4_CHECK(history >= 0);
  checkpoint::ModelConfig r = config();
  r.num_hidden_layers = num_blocks();
  r.compress_ratios.assign(static_cast<size_t>(num_blocks()), 0);
  r.num_hash_layers = 0;
  r.num_nextn_predict_layers = 0;
  r.dspark = {};
  r.sliding_window += history;
  return r;
}

Status Dspark::Extend(ThreadPool& pool, std::span<const ContextItem> batch,
                      DsparkWorkspace* ws) const {
  if (ws == nullptr) {
    DsparkWorkspace fresh;
    return Extend(pool, batch, &fresh);
  }
  const checkpoint::ModelConfig& c = config();
  const int64_t D = c.hidden_size, width = hidden_width();
  const int64_t d = c.head_dim, r = c.qk_rope_head_dim;
  // Validate everything and reserve every page before touching any ring.
  int64_t m = 0;
  for (const ContextItem& item : batch) {
    const int64_t values = static_cast<int64_t>(item.hidden.size());
    if (values % width != 0) {
      return Status::InvalidArgument("DSpark context: hidden rows of " + std::to_string(width) +
                                     " values (T target layers x hidden_size), got " +
                                     std::to_string(values) + " values");
    }
    const int64_t end = item.ring->num_tokens() + values / width;
    if (end > c.max_position_embeddings) {
      return Status::OutOfRange("DSpark context: position " + std::to_string(end - 1) +
                                " is past max_position_embeddings " +
                                std::to_string(c.max_position_embeddings));
    }
    m += values / width;
  }
  for (const ContextItem& item : batch) {
    DSV4_RETURN_IF_ERROR(item.ring->Reserve(item.ring->num_tokens() +
                                            static_cast<int64_t>(item.hidden.size()) / width));
  }
  if (m == 0) return Status::Ok();
  // main_x = RMSNorm(main_proj(h); main_norm) over every row of the batch.
  kernels::Workspace& kws = ws->block.kernels;
  const BF16* h = batch.size() == 1 ? batch[0].hidden.data() : nullptr;
  if (h == nullptr) {
    BF16* all = GrowTo(ws->block.xh, m * width);
    for (const ContextItem& item : batch) {
      all = std::copy(item.hidden.begin(), item.hidden.end(), all);
    }
    h = ws->block.xh.data();
  }
  BF16* main_x = GrowTo(ws->main_x, m * D);
  kernels::Linear(pool, weights_.main_proj, h, m, main_x, &kws);
  const float eps = static_cast<float>(c.rms_norm_eps);
  for (int64_t t = 0; t < m; ++t) {
    models::RmsNorm(main_x + t * D, weights_.main_norm, D, eps, main_x + t * D);
  }
  int64_t* positions = GrowTo(ws->positions, m);
  int64_t row = 0;
  for (const ContextItem& item : batch) {
    const int64_t pos0 = item.ring->num_tokens();
    for (int64_t t = 0; t < static_cast<int64_t>(item.hidden.size()) / width; ++t) {
      positions[row++] = pos0 + t;
    }
  }
  // Each block's window key of every row, FP8-packed into its ring layer.
  AttentionWorkspace& aw = ws->block.attention;
  for (int64_t b = 0; b < num_blocks(); ++b) {
    ProjectWindowKeys(pool, c, blocks_[b], rope_[b], positions, main_x, m, &aw);
    row = 0;
    for (const ContextItem& item : batch) {
      for (int64_t t = 0; t < static_cast<int64_t>(item.hidden.size()) / width; ++t, ++row) {
        EncodeKvEntry(aw.kv.data() + row * d, d - r, r, item.ring->WindowRow(b, positions[row]));
      }
    }
  }
  for (const ContextItem& item : batch) {
    item.ring->set_num_tokens(item.ring->num_tokens() +
                              static_cast<int64_t>(item.hidden.size()) / width);
  }
  return Status::Ok();
}

void Dspark::BlockAttention(ThreadPool& pool, int64_t b, std::span<const DraftItem> batch,
                            int64_t n, DsparkWorkspace* ws) const {
  const checkpoint::ModelConfig& c = config();
  const int64_t H = c.num_attention_heads, d = c.head_dim, r = c.qk_rope_head_dim;
  const int64_t S = block_size(), W = c.sliding_window;
  const LayerWeights& w = blocks_[b];
  const RopeTable& rope = rope_[b];
  AttentionWorkspace& aw = ws->block.attention;
  ProjectAttention(pool, c, w, rope, ws->positions.data(), ws->block.u.data(), n, &aw);
  const int64_t eb = batch[0].ring->entry_bytes();
  uint8_t* keys = GrowTo(ws->block_keys, n * eb);
  for (int64_t t = 0; t < n; ++t) EncodeKvEntry(aw.kv.data() + t * d, d - r, r, keys + t * eb);
  BF16* o = GrowTo(aw.o, n * H * d);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  std::vector<const uint8_t*>& entries = aw.attend.entries;
  for (size_t i = 0; i < batch.size(); ++i) {
    // One KV set for the whole block: the window positions ascending, then the S block keys.
    const kv::V4SequenceCache& ring = *batch[i].ring;
    const int64_t P = ring.num_tokens();
    entries.clear();
    for (int64_t q = std::max<int64_t>(0, P - W); q < P; ++q) entries.push_back(ring.WindowRow(b, q));
    const int64_t row0 = static_cast<int64_t>(i) * S;
    for (int64_t j = 0; j < S; ++j) entries.push_back(keys + (row0 + j) * eb);
    for (int64_t j = 0; j < S; ++j) {
      const int64_t t = row0 + j;
      BF16* oh = o + t * H * d;
      kernels::SparseAttentionPacked(pool, aw.q.data() + t * H * d, entries.data(),
                                     static_cast<int64_t>(entries.size()), w.attn_sink, H, d - r,
                                     r, scale, oh, &aw.kernels);
      for (int64_t h = 0; h < H; ++h) rope.Apply(oh + h * d + d - r, P + j, true);
    }
  }
  AttentionOutput(pool, c, w, n, ws->block.f.data(), &aw);
}

void Dspark::Markov(ThreadPool& pool, std::span<const DraftItem> batch, DsparkWorkspace* ws) const {
  const checkpoint::ModelConfig& c = config();
  const int64_t D = c.hidden_size, V = c.vocab_size, R = c.dspark.markov_rank;
  const int64_t S = block_size(), B = static_cast<int64_t>(batch.size());
  float* logits = ws->block.logits.data();  // FP32 [B*S, V]
  const BF16* x = ws->block.h.data();       // BF16 [B*S, D]
  int32_t* prev = GrowTo(ws->prev, B);
  BF16* e = GrowTo(ws->e, B * R);
  BF16* bias = GrowTo(ws->bias, B * V);
  BF16* feature = GrowTo(ws->feature, B * (D + R));
  BF16* conf = GrowTo(ws->conf, B);
  kernels::Workspace& kws = ws->block.kernels;
  for (int64_t i = 0; i < B; ++i) {
    prev[i] = batch[i].anchor;
    batch[i].drafts->resize(static_cast<size_t>(S));
    if (batch[i].confidence != nullptr) batch[i].confidence->resize(static_cast<size_t>(S));
  }
  for (int64_t j = 0; j < S; ++j) {
    for (int64_t i = 0; i < B; ++i) {
      std::memcpy(e + i * R, weights_.markov_w1 + static_cast<int64_t>(prev[i]) * R, R * sizeof(BF16));
    }
    kernels::Linear(pool, weights_.markov_w2, e, B, bias, &kws);
    for (int64_t i = 0; i < B; ++i) {
      const int64_t t = i * S + j;
      float* row = logits + t * V;
      for (int64_t v = 0; v < V; ++v) row[v] += Bf16ToF32(bias[i * V + v]);
      const int32_t tok = static_cast<int32_t>(std::max_element(row, row + V) - row);
      (*batch[i].drafts)[static_cast<size_t>(j)] = tok;
      std::memcpy(feature + i * (D + R), x + t * D, D * sizeof(BF16));
      std::memcpy(feature + i * (D + R) + D, e + i * R, R * sizeof(BF16));
      prev[i] = tok;
    }
    kernels::Linear(pool, weights_.confidence, feature, B, conf, &kws);
    for (int64_t i = 0; i < B; ++i) {
      if (batch[i].confidence == nullptr) continue;
      (*batch[i].confidence)[static_cast<size_t>(j)] =
          1.0f / (1.0f + std::exp(-Bf16ToF32(conf[i])));
    }
  }
  for (int64_t i = 0; i < B; ++i) {
    if (batch[i].logits == nullptr) continue;
    batch[i].logits->assign(logits + i * S * V, logits + (i + 1) * S * V);
  }
}

void Dspark::JoinExpertParallelCall(ThreadPool& pool, DsparkWorkspace* ws) const {
  dist::ExpertParallel* ep = target_.expert_parallel();
  DSV4_CHECK(ep != nullptr);
  for (const LayerWeights& block : blocks_) {
    MoeForwardParallel(pool, config(), block, *ep, nullptr, nullptr, 0, nullptr,
                       &ws->block.moe, &ws->block.kernels);
  }
}

Status Dspark::Draft(ThreadPool& pool, std::span<const DraftItem> batch,
                     DsparkWorkspace* ws) const {
  if (ws == nullptr) {
    DsparkWorkspace fresh;
    return Draft(pool, batch, &fresh);
  }
  if (batch.empty()) return Status::Ok();
  const checkpoint::ModelConfig& c = config();
  const int64_t D = c.hidden_size, hc = c.hc_mult, S = block_size();
  const int64_t n = static_cast<int64_t>(batch.size()) * S;
  ForwardWorkspace& fw = ws->block;
  std::vector<int32_t>& tokens = fw.tokens;
  tokens.clear();
  int64_t* positions = GrowTo(ws->positions, n);
  for (size_t i = 0; i < batch.size(); ++i) {
    const int64_t P = batch[i].ring->num_tokens();
    const size_t first = tokens.size();
    tokens.push_back(batch[i].anchor);
    tokens.resize(first + static_cast<size_t>(S), static_cast<int32_t>(c.dspark.noise_token_id));
    DSV4_RETURN_IF_ERROR(models::CheckSequence(
        c, P, std::span<const int32_t>(tokens).subspan(first, static_cast<size_t>(S))));
    for (int64_t j = 0; j < S; ++j) positions[static_cast<int64_t>(first) + j] = P + j;
  }
  // The block rows' streams: each token's embedding in every stream.
  const BF16* embed = target_.weights().embed;
  BF16* x = GrowTo(fw.x, n * hc * D);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t j = 0; j < hc; ++j) {
      std::memcpy(x + (t * hc + j) * D, embed + tokens[t] * D, D * sizeof(BF16));
    }
  }
  dist::ExpertParallel* ep = target_.expert_parallel();
  if (ep != nullptr) ep->BeginDraftCall();  // past every check: the other ranks join its MoE
  for (int64_t b = 0; b < num_blocks(); ++b) {
    BlockAttentionInput(pool, c, blocks_[b], x, n, &fw);
    BlockAttention(pool, b, batch, n, ws);
    BlockFinish(pool, c, blocks_[b], tokens.data(), x, n, &fw, ep);
  }
  std::vector<int64_t>& rows = fw.rows;
  rows.resize(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) rows[static_cast<size_t>(t)] = t;
  HeadForward(pool, c, weights_.hc_head, weights_.norm, target_.weights().head, x, rows, &fw);
  Markov(pool, batch, ws);
  return Status::Ok();
}

}  // namespace dsv4::v4
