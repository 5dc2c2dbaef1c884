#include "models/v4/model.h"

#include <cstring>

#include "core/grow.h"
#include "models/common/sequence_check.h"

namespace dsv4::v4 {

Result<std::unique_ptr<Model>> Model::Create(const checkpoint::ModelConfig& c,
                                             const checkpoint::TensorSource& source,
                                             const checkpoint::LoadOptions& options) {
  DSV4_RETURN_IF_ERROR(checkpoint::ValidateModelConfig(c, source.label()));
  std::unique_ptr<Model> m(new Model());
  m->config_ = c;
  if (options.expert_parallel && options.expert_parallel->comm() == nullptr) {
    return Status::InvalidArgument(source.label() + ": expert parallelism without a "
                                   "communicator can load weights but not run them");
  }
  m->ep_ = options.expert_parallel;
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

void Model::RunLayers(ThreadPool& pool, int64_t n, ForwardWorkspace* ws) const {
  BF16* x = GrowTo(ws->x, n * config_.hc_mult * config_.hidden_size);
  for (const LayerWeights& lw : weights_->layers) {
    BlockForward(pool, config_, lw, rope_[lw.layer], ws->seqs, ws->tokens.data(), x, n, ws,
                 ep_.get());
  }
}

Status Model::FollowSteps(ThreadPool& pool, ForwardWorkspace* ws) const {
  if (!ep_) {
    return Status::FailedPrecondition("FollowSteps: the model was not loaded with expert "
                                      "parallelism");
  }
  ForwardWorkspace fresh;
  if (ws == nullptr) ws = &fresh;
  ws->seqs.clear();
  ws->tokens.clear();
  while (ep_->AwaitStep()) RunLayers(pool, 0, ws);
  return Status::Ok();
}

Status Model::JoinStep(ThreadPool& pool, ForwardWorkspace* ws) const {
  if (!ep_) {
    return Status::FailedPrecondition("JoinStep: the model was not loaded with expert "
                                      "parallelism");
  }
  ForwardWorkspace fresh;
  if (ws == nullptr) ws = &fresh;
  ws->seqs.clear();
  ws->tokens.clear();
  ep_->JoinAgreedStep();
  RunLayers(pool, 0, ws);
  return Status::Ok();
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
  if (ep_) ep_->BeginStep();  // past every check: the other ranks now run this step too
  RunLayers(pool, n, ws);
  for (const SeqSlice& s : seqs) s.cache->set_num_tokens(s.pos0 + s.n);
  for (size_t i = 0; i < batch.size(); ++i) {
    std::vector<BF16>* hidden = batch[i].hidden;
    if (hidden == nullptr) continue;
    hidden->assign(x + seqs[i].row0 * hc * D, x + (seqs[i].row0 + seqs[i].n) * hc * D);
  }

  // Final collapse, norm and FP32 head for the rows whose logits are wanted, in one GEMM
  // (every head tile is read once for all of them).
  std::vector<int64_t>& rows = ws->rows;
  rows.clear();
  for (size_t i = 0; i < batch.size(); ++i) {
    AppendLogitRows(seqs[i], batch[i].mode, batch[i].logits != nullptr, &rows);
  }
  const float* all = HeadForward(pool, c, mw.hc_head, mw.norm, mw.head, x, rows, ws);
  // Into the callers' vectors: assign reuses their capacity (a caller that keeps its logits
  // vectors across steps allocates nothing here).
  int64_t next = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    const BatchItem& item = batch[i];
    if (item.logits == nullptr) continue;
    const int64_t first = next;
    next += AppendLogitRows(seqs[i], item.mode, true, nullptr);
    item.logits->assign(all + first * c.vocab_size, all + next * c.vocab_size);
  }
  return Status::Ok();
}

}  // namespace dsv4::v4
