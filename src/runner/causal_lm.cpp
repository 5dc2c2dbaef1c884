#include "runner/causal_lm.h"

#include "model/v4/model.h"

namespace dsv4::runner {
namespace {

class V4Sequence final : public SequenceState {
 public:
  explicit V4Sequence(const model::ModelConfig& c) : cache(c) {}
  int64_t num_tokens() const override { return cache.num_tokens(); }
  kv::KvFootprint Usage() const override { return cache.Usage(); }
  kv::V4SequenceCache cache;
};

class V4Lm final : public CausalLm {
 public:
  explicit V4Lm(std::unique_ptr<v4::Model> m) : model_(std::move(m)) {}
  const model::ModelConfig& config() const override { return model_->config(); }
  std::unique_ptr<SequenceState> NewSequence() const override {
    return std::make_unique<V4Sequence>(model_->config());
  }
  Status Forward(ThreadPool& pool, SequenceState& state, std::span<const int32_t> tokens,
                 LogitsMode mode, std::vector<float>* logits) const override {
    auto& seq = static_cast<V4Sequence&>(state);
    return model_->Forward(pool, seq.cache, tokens, mode, logits);
  }

 private:
  std::unique_ptr<v4::Model> model_;
};

}  // namespace

Result<std::unique_ptr<CausalLm>> CreateCausalLm(const model::ModelConfig& c,
                                                 const model::TensorSource& source) {
  if (c.arch == model::Arch::kV4) {
    DSV4_ASSIGN_OR_RETURN(std::unique_ptr<v4::Model> m, v4::Model::Create(c, source));
    return std::unique_ptr<CausalLm>(new V4Lm(std::move(m)));
  }
  return Status::Unimplemented(source.label() +
                               ": the DeepSeek-V3.2 forward pass is not part of this build yet");
}

}  // namespace dsv4::runner
