#include "models/v4/mtp.h"

#include <algorithm>
#include <string>

#include "core/grow.h"
#include "kernels/cpu/linear.h"
#include "models/common/norm.h"
#include "models/common/sequence_check.h"
#include "models/v4/moe_parallel.h"

namespace dsv4::v4 {

Mtp::Mtp(const Model& target, const MtpWeights& w)
    : target_(target),
      weights_(w),
      block_(w.block),
      rope_(RopeTable::ForLayer(target.config(), target.config().num_hidden_layers)) {
  DSV4_CHECK(w.block.kind == checkpoint::LayerKind::kSwa);
  block_.layer = 0;
}

int64_t Mtp::hidden_width() const { return config().hc_mult * config().hidden_size; }

checkpoint::ModelConfig Mtp::RingConfig(int64_t history) const {
  DSV4_CHECK(history >= 0);
  checkpoint::ModelConfig r = config();
  r.num_hidden_layers = 1;
  r.compress_ratios = {0};
  r.num_hash_layers = 0;
  r.num_nextn_predict_layers = 0;
  r.dspark = {};
  r.sliding_window += history;
  return r;
}

void Mtp::Input(ThreadPool& pool, std::span<const BatchItem> batch, int64_t n,
                MtpWorkspace* ws) const {
  const checkpoint::ModelConfig& c = config();
  const int64_t D = c.hidden_size, hc = c.hc_mult;
  const float eps = static_cast<float>(c.rms_norm_eps);
  const BF16* embed = target_.weights().embed;
  const int32_t* tokens = ws->block.tokens.data();
  // ê = RMSNorm(embed(token_{t+1}); enorm), then e_proj: BF16 [n, D].
  BF16* e = GrowTo(ws->e, n * D);
  for (int64_t t = 0; t < n; ++t) models::RmsNorm(embed + tokens[t] * D, weights_.enorm, D, eps, e + t * D);
  BF16* ep = GrowTo(ws->ep, n * D);
  kernels::Linear(pool, weights_.e_proj, e, n, ep, &ws->block.kernels);
  // X̂_j = RMSNorm(X_j; hnorm) per stream, then h_proj over all n*hc stream rows.
  BF16* xn = GrowTo(ws->xn, n * hc * D);
  int64_t row = 0;
  for (const BatchItem& item : batch) {
    const int64_t rows = static_cast<int64_t>(item.next_tokens.size()) * hc;
    for (int64_t r = 0; r < rows; ++r, ++row) {
      models::RmsNorm(item.hidden.data() + r * D, weights_.hnorm, D, eps, xn + row * D);
    }
  }
  BF16* hp = GrowTo(ws->hp, n * hc * D);
  kernels::Linear(pool, weights_.h_proj, xn, n * hc, hp, &ws->block.kernels);
  // X0_j = bf16(e_proj(ê) + h_proj(X̂_j)): two BF16 tensors added as the reference's torch
  // expression does (FP32 sum, one rounding).
  BF16* x = GrowTo(ws->block.x, n * hc * D);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t j = 0; j < hc; ++j) {
      const BF16* h = hp + (t * hc + j) * D;
      BF16* out = x + (t * hc + j) * D;
      for (int64_t k = 0; k < D; ++k) {
        out[k] = F32ToBf16(Bf16ToF32(ep[t * D + k]) + Bf16ToF32(h[k]));
      }
    }
  }
}

void Mtp::JoinExpertParallelCall(ThreadPool& pool, MtpWorkspace* ws) const {
  dist::ExpertParallel* ep = target_.expert_parallel();
  DSV4_CHECK(ep != nullptr);
  MoeForwardParallel(pool, config(), block_, *ep, nullptr, nullptr, 0, nullptr,
                     &ws->block.moe, &ws->block.kernels);
}

Status Mtp::ForwardBatch(ThreadPool& pool, std::span<const BatchItem> batch,
                         MtpWorkspace* ws) const {
  if (ws == nullptr) {
    MtpWorkspace fresh;
    return ForwardBatch(pool, batch, &fresh);
  }
  const checkpoint::ModelConfig& c = config();
  const int64_t width = hidden_width();
  ForwardWorkspace& fw = ws->block;
  // Validate everything and reserve every page before touching any ring.
  std::vector<SeqSlice>& seqs = fw.seqs;
  std::vector<int32_t>& tokens = fw.tokens;
  seqs.clear();
  tokens.clear();
  for (const BatchItem& item : batch) {
    const int64_t pos0 = item.ring->num_tokens();
    const int64_t n = static_cast<int64_t>(item.next_tokens.size());
    if (static_cast<int64_t>(item.hidden.size()) != n * width) {
      return Status::InvalidArgument(
          "MTP input: " + std::to_string(n) + " next tokens need " + std::to_string(n) +
          " hidden rows of " + std::to_string(width) + " values (" + std::to_string(n * width) +
          "), got " + std::to_string(item.hidden.size()) + " values");
    }
    // The rows run at positions pos0 ..; their tokens are the ids t+1 (vocabulary check).
    DSV4_RETURN_IF_ERROR(models::CheckSequence(c, pos0, item.next_tokens));
    seqs.push_back({item.ring, pos0, static_cast<int64_t>(tokens.size()), n});
    tokens.insert(tokens.end(), item.next_tokens.begin(), item.next_tokens.end());
  }
  for (const SeqSlice& s : seqs) DSV4_RETURN_IF_ERROR(s.cache->Reserve(s.pos0 + s.n));
  const int64_t n = static_cast<int64_t>(tokens.size());
  Input(pool, batch, n, ws);
  BF16* x = fw.x.data();
  dist::ExpertParallel* ep = target_.expert_parallel();
  if (ep != nullptr) ep->BeginDraftCall();  // past every check: the other ranks join its MoE
  BlockForward(pool, c, block_, rope_, seqs, tokens.data(), x, n, &fw, ep);
  for (const SeqSlice& s : seqs) s.cache->set_num_tokens(s.pos0 + s.n);

  // The rows whose logits (and streams) are wanted, the items' in batch order.
  std::vector<int64_t>& rows = fw.rows;
  rows.clear();
  for (size_t i = 0; i < batch.size(); ++i) {
    const bool wanted = batch[i].logits != nullptr || batch[i].streams != nullptr;
    AppendLogitRows(seqs[i], batch[i].mode, wanted, &rows);
  }
  const float* all =
      HeadForward(pool, c, weights_.hc_head, weights_.norm, target_.weights().head, x, rows, &fw);
  int64_t next = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    const BatchItem& item = batch[i];
    const bool wanted = item.logits != nullptr || item.streams != nullptr;
    const int64_t first = next;
    next += AppendLogitRows(seqs[i], item.mode, wanted, nullptr);
    if (item.logits != nullptr) {
      item.logits->assign(all + first * c.vocab_size, all + next * c.vocab_size);
    }
    if (item.streams != nullptr) {
      item.streams->resize(static_cast<size_t>((next - first) * width));
      for (int64_t r = first; r < next; ++r) {
        std::copy_n(x + rows[r] * width, width, item.streams->data() + (r - first) * width);
      }
    }
  }
  return Status::Ok();
}

}  // namespace dsv4::v4
