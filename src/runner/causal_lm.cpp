#include "runner/causal_lm.h"

#include <mutex>

#include "models/v32/model.h"
#include "models/v4/model.h"
#include "runner/drafter.h"

namespace dsv4::runner {
namespace {

// A sequence of a paged cache (kv::V4SequenceCache, kv::V32SequenceCache): the scheduler's
// view of it.
template <class Cache>
class PagedSequence final : public SequenceState {
 public:
  PagedSequence(const checkpoint::ModelConfig& c, kv::KvManager* kv) : cache(c, kv) {}
  int64_t num_tokens() const override { return cache.num_tokens(); }
  kv::KvFootprint Usage() const override { return cache.Usage(); }
  Status Reserve(int64_t n) override { return cache.Reserve(n); }
  void Release() override { cache.Release(); }
  std::unique_ptr<kv::PrefixSnapshot> TakeSnapshot() override { return cache.TakeSnapshot(); }
  Status RestoreSnapshot(const kv::PrefixSnapshot& s) override { return cache.RestoreSnapshot(s); }
  Status RestoreImage(const kv::SnapshotImage& image) override { return cache.RestoreImage(image); }
  bool supports_rollback() const override { return true; }
  Status BeginSpeculation(int64_t max_tokens) override {
    return cache.BeginSpeculation(max_tokens);
  }
  Status RollbackTo(int64_t n) override { return cache.RollbackTo(n); }
  void EndSpeculation() override { cache.EndSpeculation(); }
  Cache cache;
};
using V4Sequence = PagedSequence<kv::V4SequenceCache>;
using V32Sequence = PagedSequence<kv::V32SequenceCache>;

class V4Lm final : public CausalLm {
 public:
  explicit V4Lm(std::unique_ptr<v4::Model> m) : model_(std::move(m)) {}
  const checkpoint::ModelConfig& config() const override { return model_->config(); }
  kv::PageLayout page_layout() const override {
    return kv::PageLayout(model_->config(), kv::DefaultKvFormats(checkpoint::Arch::kV4));
  }
  std::unique_ptr<SequenceState> NewSequence(kv::KvManager* kv) const override {
    return std::make_unique<V4Sequence>(model_->config(), kv);
  }
  bool snapshots_prefixes() const override { return true; }
  int64_t hidden_width(HiddenRows kind) const override { return model_->hidden_width(kind); }
  const v4::Model* v4_model() const override { return model_.get(); }
  Status Forward(ThreadPool& pool, SequenceState& state, std::span<const int32_t> tokens,
                 LogitsMode mode, std::vector<float>* logits) const override {
    const BatchItem item{&state, tokens, mode, logits};
    return ForwardBatch(pool, {&item, 1});
  }
  Status ForwardBatch(ThreadPool& pool, std::span<const BatchItem> batch) const override {
    // The kept scratch serves one call at a time; a concurrent call gets a fresh one.
    std::unique_lock<std::mutex> lock(ws_mu_, std::try_to_lock);
    std::vector<v4::Model::BatchItem> fresh_items;
    std::vector<v4::Model::BatchItem>& items = lock.owns_lock() ? items_ : fresh_items;
    items.clear();
    for (const BatchItem& b : batch) {
      items.push_back(
          {&static_cast<V4Sequence*>(b.state)->cache, b.tokens, b.mode, b.logits, b.hidden,
           b.hidden_rows});
    }
    return model_->ForwardBatch(pool, items, lock.owns_lock() ? &ws_ : nullptr);
  }
  Status FollowExpertParallelSteps(ThreadPool& pool, const Drafter* drafter) const override {
    std::lock_guard<std::mutex> lock(ws_mu_);
    return model_->FollowSteps(pool, &ws_, [&] {
      DSV4_CHECK_MSG(drafter != nullptr, "rank 0 runs a drafter that this rank did not load");
      drafter->JoinExpertParallelCall(pool);
    });
  }
  Status JoinExpertParallelStep(ThreadPool& pool) const override {
    std::lock_guard<std::mutex> lock(ws_mu_);
    return model_->JoinStep(pool, &ws_);
  }

 private:
  std::unique_ptr<v4::Model> model_;
  // Forward scratch kept across calls, so that a warm step (the engine's decode) allocates
  // none; its contents never change a result.
  mutable std::mutex ws_mu_;
  mutable v4::ForwardWorkspace ws_;
  mutable std::vector<v4::Model::BatchItem> items_;  // the step's batch (under ws_mu_)
};

class V32Lm final : public CausalLm {
 public:
  explicit V32Lm(std::unique_ptr<v32::Model> m) : model_(std::move(m)) {}
  const checkpoint::ModelConfig& config() const override { return model_->config(); }
  kv::PageLayout page_layout() const override {
    return kv::PageLayout(model_->config(), kv::DefaultKvFormats(checkpoint::Arch::kV32));
  }
  std::unique_ptr<SequenceState> NewSequence(kv::KvManager* kv) const override {
    return std::make_unique<V32Sequence>(model_->config(), kv);
  }
  bool snapshots_prefixes() const override { return true; }
  Status Forward(ThreadPool& pool, SequenceState& state, std::span<const int32_t> tokens,
                 LogitsMode mode, std::vector<float>* logits) const override {
    return model_->Forward(pool, static_cast<V32Sequence&>(state).cache, tokens, mode, logits);
  }
  Status ForwardBatch(ThreadPool& pool, std::span<const BatchItem> batch) const override {
    std::vector<v32::Model::BatchItem> items;
    for (const BatchItem& b : batch) {
      items.push_back({&static_cast<V32Sequence*>(b.state)->cache, b.tokens, b.mode, b.logits});
    }
    return model_->ForwardBatch(pool, items);
  }
  Status FollowExpertParallelSteps(ThreadPool& pool, const Drafter* /*drafter*/) const override {
    return model_->FollowSteps(pool);  // no V3.2 drafter is loaded
  }
  Status JoinExpertParallelStep(ThreadPool& pool) const override {
    return model_->JoinStep(pool);
  }

 private:
  std::unique_ptr<v32::Model> model_;
};

}  // namespace

Status CausalLm::ForwardBatch(ThreadPool& pool, std::span<const BatchItem> batch) const {
  for (const BatchItem& b : batch) {
    DSV4_RETURN_IF_ERROR(Forward(pool, *b.state, b.tokens, b.mode, b.logits));
  }
  return Status::Ok();
}

Status CausalLm::FollowExpertParallelSteps(ThreadPool& pool, const Drafter* drafter) const {
  return Status::FailedPrecondition("this model was not loaded with expert parallelism (--ep)");
}

Status CausalLm::JoinExpertParallelStep(ThreadPool& pool) const {
  return Status::FailedPrecondition("this model was not loaded with expert parallelism (--ep)");
}

Result<std::unique_ptr<CausalLm>> CreateCausalLm(const checkpoint::ModelConfig& c,
                                                 const checkpoint::TensorSource& source,
                                                 const checkpoint::LoadOptions& options) {
  if (c.arch == checkpoint::Arch::kV4) {
    DSV4_ASSIGN_OR_RETURN(std::unique_ptr<v4::Model> m, v4::Model::Create(c, source, options));
    return std::unique_ptr<CausalLm>(new V4Lm(std::move(m)));
  }
  DSV4_ASSIGN_OR_RETURN(std::unique_ptr<v32::Model> m, v32::Model::Create(c, source, options));
  return std::unique_ptr<CausalLm>(new V32Lm(std::move(m)));
}

}  // namespace dsv4::runner
