#include "runner/accounting_lm.h"

#include <array>
#include <limits>

#include "checkpoint/presets.h"

namespace dsv4::runner {
namespace {

class AccountingSequence final : public SequenceState {
 public:
  explicit AccountingSequence(kv::KvManager* kv) : kv_(kv) {}
  ~AccountingSequence() override { Release(); }

  int64_t num_tokens() const override { return num_tokens_; }
  void Advance(int64_t n) { num_tokens_ += n; }

  kv::KvFootprint Usage() const override {
    std::array<int64_t, kv::kNumComponents> pages{};
    for (int c = 0; c < kv::kNumComponents; ++c) pages[c] = static_cast<int64_t>(pages_[c].size());
    return kv::PagedFootprint(kv_->layout(), num_tokens_, pages);
  }

  Status Reserve(int64_t n) override {
    if (n <= reserved_) return Status::Ok();
    std::vector<kv::Component> got;
    for (const kv::ComponentLayout& l : kv_->layout().components()) {
      auto& table = pages_[static_cast<size_t>(l.component)];
      const int64_t want = l.layers * kv_->layout().PagesAt(l.component, n);
      while (static_cast<int64_t>(table.size()) < want) {
        std::optional<kv::PageId> id = kv_->pool(l.component).Allocate();
        if (!id) {
          for (auto it = got.rbegin(); it != got.rend(); ++it) {
            auto& t = pages_[static_cast<size_t>(*it)];
            kv_->pool(*it).Release(t.back());
            t.pop_back();
          }
          return Status::ResourceExhausted("KV budget exhausted at " + std::to_string(n) +
                                           " tokens");
        }
        table.push_back(*id);
        got.push_back(l.component);
      }
    }
    reserved_ = n;
    return Status::Ok();
  }

  void Release() override {
    for (int c = 0; c < kv::kNumComponents; ++c) {
      for (kv::PageId id : pages_[c]) kv_->pool(static_cast<kv::Component>(c)).Release(id);
      pages_[c].clear();
    }
    num_tokens_ = reserved_ = 0;
  }

 private:
  kv::KvManager* kv_;
  std::array<std::vector<kv::PageId>, kv::kNumComponents> pages_;
  int64_t num_tokens_ = 0;
  int64_t reserved_ = 0;
};

class AccountingLm final : public CausalLm {
 public:
  explicit AccountingLm(const checkpoint::ModelConfig& c)
      : config_(c),
        own_(std::make_unique<kv::KvManager>(page_layout(), std::numeric_limits<int64_t>::max() / 2,
                                             /*backing=*/false)) {}
  const checkpoint::ModelConfig& config() const override { return config_; }
  kv::PageLayout page_layout() const override {
    return kv::PageLayout(config_, kv::DefaultKvFormats(config_.arch));
  }
  std::unique_ptr<SequenceState> NewSequence(kv::KvManager* kv) const override {
    return std::make_unique<AccountingSequence>(kv != nullptr ? kv : own_.get());
  }
  bool writes_kv() const override { return false; }
  Status Forward(ThreadPool&, SequenceState& state, std::span<const int32_t> tokens,
                 LogitsMode mode, std::vector<float>* logits) const override {
    auto& seq = static_cast<AccountingSequence&>(state);
    const int64_t n = static_cast<int64_t>(tokens.size());
    DSV4_RETURN_IF_ERROR(seq.Reserve(seq.num_tokens() + n));
    seq.Advance(n);
    if (logits != nullptr) {
      logits->assign(mode == LogitsMode::kNone ? 0 : (mode == LogitsMode::kLast ? 1 : n), 0.0f);
    }
    return Status::Ok();
  }

 private:
  checkpoint::ModelConfig config_;
  std::unique_ptr<kv::KvManager> own_;
};

}  // namespace

std::unique_ptr<CausalLm> MakeAccountingLm(const checkpoint::ModelConfig& c) {
  return std::make_unique<AccountingLm>(c);
}

Result<std::unique_ptr<LoadedModel>> AccountingModel(const std::string& preset) {
  DSV4_ASSIGN_OR_RETURN(checkpoint::ModelConfig c, checkpoint::PresetConfig(preset));
  // Capacity studies extrapolate past the trained context (V3.2 stops at 163,840; spec
  // §13.2 compares both at 1M): nothing is computed, only pages are counted.
  c.max_position_embeddings = int64_t{1} << 40;
  auto m = std::make_unique<LoadedModel>();
  m->name = preset + " (KV accounting only)";
  m->source = "preset " + preset;
  m->lm = MakeAccountingLm(c);
  return m;
}

}  // namespace dsv4::runner
