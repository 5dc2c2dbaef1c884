#include "models/v32/model.h"

#include <algorithm>
#include <cstring>

#include "kernels/cpu/linear.h"
#include "models/common/norm.h"
#include "models/common/sequence_check.h"
#include "models/v32/moe.h"
#include "models/v32/ops.h"

namespace dsv4::v32 {

// One forward step: its sequences' rows back to back and the buffers every layer reuses.
struct Model::Step {
  struct Seq {
    kv::V32SequenceCache* cache = nullptr;
    int64_t pos0 = 0;  // the cache's tokens before the step
    int64_t row0 = 0;  // its first row in the step
    int64_t n = 0;     // its rows
    ForwardTrace* trace = nullptr;
  };
  std::vector<Seq> seqs;
  int64_t n = 0;  // rows of all sequences
  // Residual stream h: BF16 [n, D], starting as the embedding rows. u: the normed sublayer
  // input; f: the sublayer output, added to h by the next AddRmsNorm.
  std::vector<BF16> h, u, f;
  kernels::Workspace kernel_ws;  // the kernels' scratch, reused by every layer
  MoeScratch moe;
};

Result<std::unique_ptr<Model>> Model::Create(const checkpoint::ModelConfig& c,
                                             const checkpoint::TensorSource& source,
                                             const checkpoint::LoadOptions& options) {
  DSV4_RETURN_IF_ERROR(checkpoint::ValidateModelConfig(c, source.label()));
  if (options.expert_parallel && options.expert_parallel->comm() == nullptr) {
    return Status::InvalidArgument(source.label() + ": expert parallelism without a "
                                   "communicator can load weights but not run them");
  }
  std::unique_ptr<Model> m(new Model());
  m->config_ = c;
  m->ep_ = options.expert_parallel;
  DSV4_ASSIGN_OR_RETURN(m->weights_, LoadWeights(m->config_, source, options));
  m->constants_ = MakeMlaConstants(c);
  return m;
}

Status Model::Forward(ThreadPool& pool, kv::V32SequenceCache& cache,
                      std::span<const int32_t> tokens, LogitsMode mode, std::vector<float>* logits,
                      ForwardTrace* trace) const {
  const BatchItem item{&cache, tokens, mode, logits, trace};
  return ForwardBatch(pool, {&item, 1});
}

void Model::RunLayers(ThreadPool& pool, Step& step) const {
  const checkpoint::ModelConfig& c = config_;
  const int64_t n = step.n, D = c.hidden_size, k = c.num_experts_per_tok;
  const float eps = static_cast<float>(c.rms_norm_eps);
  BF16* h = step.h.data();
  BF16* u = step.u.data();
  BF16* f = step.f.data();
  kernels::Workspace* ws = &step.kernel_ws;
  for (const LayerWeights& lw : weights_->layers) {
    if (lw.layer > 0) {
      for (int64_t t = 0; t < n; ++t) {
        AddRmsNorm(f + t * D, h + t * D, lw.input_norm, D, eps, u + t * D);
      }
    }
    // Attention per sequence (its own cache); everything else over the step's rows at once.
    for (const Step::Seq& s : step.seqs) {
      if (s.n == 0) continue;
      ForwardTrace::Layer* lt = s.trace != nullptr ? &s.trace->layers[lw.layer] : nullptr;
      AttentionForward(pool, c, lw, constants_, *s.cache, s.pos0, u + s.row0 * D, s.n,
                       f + s.row0 * D, ws, lt != nullptr ? &lt->selected : nullptr);
    }
    for (int64_t t = 0; t < n; ++t) {
      AddRmsNorm(f + t * D, h + t * D, lw.post_attn_norm, D, eps, u + t * D);
    }
    if (lw.dense) {
      if (n > 0) DenseFfnForward(pool, lw.ffn, u, n, f, ws);
      continue;
    }
    if (ep_) {
      MoeForwardParallel(pool, c, lw, *ep_, u, n, f, &step.moe, ws);
    } else {
      MoeForward(pool, c, lw, u, n, f, &step.moe, ws);
    }
    for (const Step::Seq& s : step.seqs) {
      if (s.trace == nullptr) continue;
      std::vector<std::vector<int32_t>>& experts = s.trace->layers[lw.layer].experts;
      for (int64_t t = s.row0; t < s.row0 + s.n; ++t) {
        const int32_t* chosen = step.moe.expert_of.data() + t * k;
        experts.emplace_back(chosen, chosen + k);
        std::sort(experts.back().begin(), experts.back().end());
      }
    }
  }
}

Status Model::ForwardBatch(ThreadPool& pool, std::span<const BatchItem> batch) const {
  const checkpoint::ModelConfig& c = config_;
  const int64_t D = c.hidden_size;
  // Validate everything and reserve every page before touching any cache.
  Step step;
  for (const BatchItem& item : batch) {
    const int64_t pos0 = item.cache->num_tokens(), n = static_cast<int64_t>(item.tokens.size());
    DSV4_RETURN_IF_ERROR(models::CheckSequence(c, pos0, item.tokens));
    DSV4_RETURN_IF_ERROR(item.cache->CheckAppend(n));
    step.seqs.push_back({item.cache, pos0, step.n, n, item.trace});
    step.n += n;
  }
  for (const BatchItem& item : batch) {
    DSV4_RETURN_IF_ERROR(item.cache->Reserve(item.cache->num_tokens() +
                                             static_cast<int64_t>(item.tokens.size())));
  }
  for (const BatchItem& item : batch) {
    if (item.trace != nullptr) item.trace->layers.assign(weights_->layers.size(), {});
  }
  const int64_t n = step.n;
  if (n == 0 && !ep_) {
    for (const BatchItem& item : batch) {
      if (item.logits != nullptr) item.logits->clear();
    }
    return Status::Ok();
  }
  const ModelWeights& mw = *weights_;
  const float eps = static_cast<float>(c.rms_norm_eps);
  step.h.resize(static_cast<size_t>(n * D));
  step.u.resize(step.h.size());
  step.f.resize(step.h.size());
  for (const Step::Seq& s : step.seqs) {
    const std::span<const int32_t> tokens = batch[&s - step.seqs.data()].tokens;
    for (int64_t i = 0; i < s.n; ++i) {
      const int64_t t = s.row0 + i;
      std::memcpy(step.h.data() + t * D, mw.embed + tokens[i] * D, D * sizeof(BF16));
      models::RmsNorm(step.h.data() + t * D, mw.layers[0].input_norm, D, eps,
                      step.u.data() + t * D);
    }
  }
  if (ep_) ep_->BeginStep();  // past every check: the other ranks now run this step too
  RunLayers(pool, step);
  for (const Step::Seq& s : step.seqs) s.cache->set_num_tokens(s.pos0 + s.n);

  // Final norm and FP32 head for the rows whose logits are wanted, in one GEMM (every head
  // tile is read once for all of them).
  std::vector<int64_t> rows;  // [wanted]: their rows in the step
  for (size_t i = 0; i < batch.size(); ++i) {
    const BatchItem& item = batch[i];
    const Step::Seq& s = step.seqs[i];
    if (item.mode == LogitsMode::kNone || item.logits == nullptr || s.n == 0) continue;
    for (int64_t t = item.mode == LogitsMode::kLast ? s.n - 1 : 0; t < s.n; ++t) {
      rows.push_back(s.row0 + t);
    }
  }
  const int64_t wanted = static_cast<int64_t>(rows.size()), V = c.vocab_size;
  std::vector<BF16> hn(static_cast<size_t>(wanted * D));
  for (int64_t r = 0; r < wanted; ++r) {
    const int64_t t = rows[r];
    AddRmsNorm(step.f.data() + t * D, step.h.data() + t * D, mw.norm, D, eps, hn.data() + r * D);
  }
  std::vector<float> all(static_cast<size_t>(wanted * V));
  if (wanted > 0) {
    kernels::LinearBf16InF32(pool, mw.head, hn.data(), wanted, all.data(), &step.kernel_ws);
  }
  int64_t next = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    const BatchItem& item = batch[i];
    const Step::Seq& s = step.seqs[i];
    if (item.logits == nullptr || (item.mode == LogitsMode::kNone && s.n > 0)) continue;
    const int64_t count = s.n == 0 ? 0 : item.mode == LogitsMode::kLast ? 1 : s.n;
    item.logits->assign(all.begin() + next * V, all.begin() + (next + count) * V);
    next += count;
  }
  return Status::Ok();
}

Status Model::FollowSteps(ThreadPool& pool) const {
  if (!ep_) {
    return Status::FailedPrecondition("FollowSteps: the model was not loaded with expert "
                                      "parallelism");
  }
  Step step;  // no rows, kept across steps
  while (true) {
    const dist::ExpertParallel::Next next = ep_->AwaitNext();
    if (next == dist::ExpertParallel::Next::kFinish) break;
    // No command loads V3.2's MTP layer, so rank 0 never announces a drafter call.
    DSV4_CHECK_MSG(next == dist::ExpertParallel::Next::kStep,
                   "a V3.2 follower was asked to join a drafter call");
    RunLayers(pool, step);
  }
  return Status::Ok();
}

Status Model::JoinStep(ThreadPool& pool) const {
  if (!ep_) {
    return Status::FailedPrecondition("JoinStep: the model was not loaded with expert "
                                      "parallelism");
  }
  Step step;
  ep_->JoinAgreedStep();
  RunLayers(pool, step);
  return Status::Ok();
}

}  // namespace dsv4::v32
