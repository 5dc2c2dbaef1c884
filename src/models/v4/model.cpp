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
  m->target_slot_.assign(static_cast<size_t>(c.num_hidden_layers), -1);
  for (size_t j = 0; j < c.dspark.target_layer_ids.size(); ++j) {
    const int64_t l = c.dspark.target_layer_ids[j];
    if (l >= 0 && l < c.num_hidden_layers) m->target_slot_[static_cast<size_t>(l)] = static_cast<int64_t>(j);
  }
  return m;
}

int64_t Model::hidden_width(models::HiddenRows kind) const {
  if (kind == models::HiddenRows::kFinalStreams) return config_.hc_mult * config_.hidden_size;
  return static_cast<int64_t>(config_.dspark.target_layer_ids.size()) * config_.hidden_size;
}

Status Model::Forward(ThreadPool& pool, kv::V4SequenceCache& cache,
                      std::span<const int32_t> tokens, LogitsMode mode,
                      std::vector<float>* logits, ForwardWorkspace* ws) const {
  const BatchItem item{&cache, tokens, mode, logits};
  return ForwardBatch(pool, {&item, 1}, ws);
}

void Model::RunLayers(ThreadPool& pool, int64_t n, std::span<const BatchItem> batch, bool means,
                      ForwardWorkspace* ws) const {
  const int64_t D = config_.hidden_size, hc = config_.hc_mult;
  const int64_t T = static_cast<int64_t>(config_.dspark.target_layer_ids.size());
  BF16* x = GrowTo(ws->x, n * hc * D);
  for (const LayerWeights& lw : weights_->layers) {
    BlockForward(pool, config_, lw, rope_[lw.layer], ws->seqs, ws->tokens.data(), x, n, ws,
                 ep_.get());
    const int64_t slot = target_slot_[static_cast<size_t>(lw.layer)];
    if (!means || slot < 0) continue;
    // The mean of the hc streams after this target layer (spec §11.4 step 1, torch's
    // h.mean(dim=2) on BF16: FP32 sum in stream order, divided by hc, one rounding).
    for (size_t i = 0; i < batch.size(); ++i) {
      const BatchItem& item = batch[i];
      if (item.hidden == nullptr || item.hidden_rows != models::HiddenRows::kTargetLayerMeans) {
        continue;
      }
      const SeqSlice& s = ws->seqs[i];
      item.hidden->resize(static_cast<size_t>(s.n * T * D));
      for (int64_t t = 0; t < s.n; ++t) {
        const BF16* streams = x + (s.row0 + t) * hc * D;
        BF16* out = item.hidden->data() + (t * T + slot) * D;
        for (int64_t k = 0; k < D; ++k) {
          float sum = 0.0f;
          for (int64_t j = 0; j < hc; ++j) sum += Bf16ToF32(streams[j * D + k]);
          out[k] = F32ToBf16(sum / static_cast<float>(hc));
        }
      }
    }
  }
}

Status Model::FollowSteps(ThreadPool& pool, ForwardWorkspace* ws,
                          FunctionRef<void()> join_draft_call) const {
  if (!ep_) {
    return Status::FailedPrecondition("FollowSteps: the model was not loaded with expert "
                                      "parallelism");
  }
  ForwardWorkspace fresh;
  if (ws == nullptr) ws = &fresh;
  ws->seqs.clear();
  ws->tokens.clear();
  while (true) {
    const dist::ExpertParallel::Next next = ep_->AwaitNext();
    if (next == dist::ExpertParallel::Next::kFinish) break;
    if (next == dist::ExpertParallel::Next::kStep) {
      RunLayers(pool, 0, {}, false, ws);
    } else {
      join_draft_call();
    }
  }
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
  RunLayers(pool, 0, {}, false, ws);
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
  bool means = false;
  for (const BatchItem& item : batch) {
    if (item.hidden != nullptr && item.hidden_rows == models::HiddenRows::kTargetLayerMeans) {
      if (c.dspark.target_layer_ids.empty()) {
        return Status::InvalidArgument("target-layer hidden rows (DSpark) requested, but the "
                                       "config has no dspark_target_layer_ids");
      }
      means = true;
    }
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
  RunLayers(pool, n, batch, means, ws);
  for (const SeqSlice& s : seqs) s.cache->set_num_tokens(s.pos0 + s.n);
  for (size_t i = 0; i < batch.size(); ++i) {
    std::vector<BF16>* hidden = batch[i].hidden;
    if (hidden == nullptr || batch[i].hidden_rows != models::HiddenRows::kFinalStreams) continue;
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
