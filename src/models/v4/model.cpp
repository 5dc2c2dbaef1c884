#include "models/v4/model.h"

#include <cstring>

#include "kernels/cpu/linear.h"
#include "core/grow.h"
#include "models/common/norm.h"
#include "models/common/sequence_check.h"
#include "models/v4/attention.h"
#include "models/v4/mhc.h"
#include "models/v4/moe.h"

namespace dsv4::v4 {

Result<std::unique_ptr<Model>> Model::Create(const checkpoint::ModelConfig& c,
                                             const checkpoint::TensorSource& source,
                                             const checkpoint::LoadOptions& options) {
  DSV4_RETURN_IF_ERROR(checkpoint::ValidateModelConfig(c, source.label()));
  std::unique_ptr<Model> m(new Model());
  m->config_ = c;
  DSV4_ASSIGN_OR_RETURN(m->weights_, LoadWeights(m->config_, source, options));
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) m->rope_.push_back(RopeTable::ForLayer(c, i));
  return m;
}

Status Model::Forward(ThreadPool& pool, kv::V4SequenceCache& cache,
                      std::span<const int32_t> tokens, LogitsMode mode,
                      std::vector<float>* logits, ForwardWorkspace* ws) const {
  const BatchItem item{&cache, tokens, mode, logits};
  return ForwardBatch(pool, {&item, 1}, ws);
}

Status Model::ForwardBatch(ThreadPool& pool, std::span<const BatchItem> batch,
                           ForwardWorkspace* ws) const {
  if (ws == nullptr) {
    ForwardWorkspace fresh;
    return ForwardBatch(pool, batch, &fresh);
  }
  const checkpoint::ModelConfig& c = config_;
  const int64_t D = c.hidden_size, hc = c.hc_mult;
  // Validate everything and reserve every page before touching any cache.
  std::vector<SeqSlice>& seqs = ws->seqs;
  std::vector<int32_t>& tokens = ws->tokens;
  seqs.clear();
  tokens.clear();
  for (const BatchItem& item : batch) {
    const int64_t pos0 = item.cache->num_tokens(), n = static_cast<int64_t>(item.tokens.size());
    DSV4_RETURN_IF_ERROR(models::CheckSequence(c, pos0, item.tokens));
    DSV4_RETURN_IF_ERROR(item.cache->CheckAppend(n));
    seqs.push_back({item.cache, pos0, static_cast<int64_t>(tokens.size()), n});
    tokens.insert(tokens.end(), item.tokens.begin(), item.tokens.end());
  }
  for (const BatchItem& item : batch) {
    DSV4_RETURN_IF_ERROR(item.cache->Reserve(item.cache->num_tokens() +
                                             static_cast<int64_t>(item.tokens.size())));
  }
  const int64_t n = static_cast<int64_t>(tokens.size());
  const ModelWeights& mw = *weights_;
  // Residual streams X: BF16 [n, hc, D], each a copy of the embedding (spec §2 step 2).
  BF16* x = GrowTo(ws->x, n * hc * D);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t j = 0; j < hc; ++j) {
      std::memcpy(x + (t * hc + j) * D, mw.embed + tokens[t] * D, D * sizeof(BF16));
    }
  }
  const MhcParams mp{hc, D, c.hc_sinkhorn_iters, static_cast<float>(c.hc_eps),
                     static_cast<float>(c.rms_norm_eps)};
  const float eps = static_cast<float>(c.rms_norm_eps);
  BF16* u = GrowTo(ws->u, n * D);
  BF16* f = GrowTo(ws->f, n * D);
  MhcWorkspace& mhc_ws = ws->mhc;
  MhcMixes& mix = ws->mix;
  AttentionWorkspace& attn_ws = ws->attention;
  kernels::Workspace& kernel_ws = ws->kernels;
  for (const LayerWeights& lw : mw.layers) {
    HcPre(pool, mp, lw.hc_attn, x, n, u, &mix, &mhc_ws);
    for (int64_t t = 0; t < n; ++t) models::RmsNorm(u + t * D, lw.attn_norm, D, eps, u + t * D);
    AttentionForward(pool, c, lw, rope_[lw.layer], seqs, u, n, f, &attn_ws);
    HcPost(pool, mp, mix, f, n, x);
    HcPre(pool, mp, lw.hc_ffn, x, n, u, &mix, &mhc_ws);
    for (int64_t t = 0; t < n; ++t) models::RmsNorm(u + t * D, lw.ffn_norm, D, eps, u + t * D);
    MoeForward(pool, c, lw, tokens.data(), u, n, f, &ws->moe, &kernel_ws);
    HcPost(pool, mp, mix, f, n, x);
  }
  for (const SeqSlice& s : seqs) s.cache->set_num_tokens(s.pos0 + s.n);

  // Final collapse, norm and FP32 head for the rows whose logits are wanted, in one GEMM
  // (every head tile is read once for all of them).
  std::vector<int64_t>& rows = ws->rows;
  rows.clear();
  for (size_t i = 0; i < batch.size(); ++i) {
    const BatchItem& item = batch[i];
    if (item.logits == nullptr || item.mode == LogitsMode::kNone || seqs[i].n == 0) continue;
    const int64_t first = item.mode == LogitsMode::kLast ? seqs[i].n - 1 : 0;
    for (int64_t t = first; t < seqs[i].n; ++t) rows.push_back(seqs[i].row0 + t);
  }
  const int64_t num_rows = static_cast<int64_t>(rows.size());
  BF16* xh = GrowTo(ws->xh, num_rows * hc * D);
  BF16* h = GrowTo(ws->h, num_rows * D);
  for (int64_t i = 0; i < num_rows; ++i) {
    std::memcpy(xh + i * hc * D, x + rows[i] * hc * D, hc * D * sizeof(BF16));
  }
  HcHead(pool, mp, mw.hc_head, xh, num_rows, h, &mhc_ws);
  for (int64_t i = 0; i < num_rows; ++i) models::RmsNorm(h + i * D, mw.norm, D, eps, h + i * D);
  float* all = GrowTo(ws->logits, num_rows * c.vocab_size);
  kernels::LinearBf16InF32(pool, mw.head, h, num_rows, all, &kernel_ws);
  // Into the callers' vectors: assign reuses their capacity (a caller that keeps its logits
  // vectors across steps allocates nothing here).
  int64_t next = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    const BatchItem& item = batch[i];
    if (item.logits == nullptr) continue;
    item.logits->clear();
    if (item.mode == LogitsMode::kNone || seqs[i].n == 0) continue;
    const int64_t count = item.mode == LogitsMode::kLast ? 1 : seqs[i].n;
    item.logits->assign(all + next * c.vocab_size, all + (next + count) * c.vocab_size);
    next += count;
  }
  return Status::Ok();
}

}  // namespace dsv4::v4
