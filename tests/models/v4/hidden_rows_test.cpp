// The target's hidden rows (Model::BatchItem::hidden, CausalLm::BatchItem::hidden): the final
// residual streams before HC_head of every fed token, bit-identical across chunking, decode
// and batching, through the model and through the runner.
#include <cstring>
#include <memory>
#include <vector>

#include <gtest/gtest.h>

#include "checkpoint/presets.h"
#include "core/rng.h"
#include "models/v4/model.h"
#include "runner/loaded_model.h"
#include "testing/weight_generator.h"

namespace dsv4::v4 {
namespace {

using models::LogitsMode;

struct Fixture {
  checkpoint::Checkpoint ck;
  std::unique_ptr<Model> model;
  std::vector<int32_t> tokens;
  int64_t width = 0;
};

const Fixture& Tiny() {
  static const Fixture* f = [] {
    auto* fx = new Fixture;
    fx->ck = fixtures::BuiltinDefaultModel().value();
    fx->model = Model::Create(fx->ck.config, *fx->ck.weights).value();
    fx->width = fx->ck.config.hc_mult * fx->ck.config.hidden_size;
    Rng rng(3);
    for (int i = 0; i < 150; ++i) {
      fx->tokens.push_back(static_cast<int32_t>(rng.Below(fx->ck.config.vocab_size)));
    }
    return fx;
  }();
  return *f;
}

// The hidden rows of every token, fed in chunks of `chunk` (logits asked for or not).
std::vector<BF16> HiddenChunked(const Fixture& f, int64_t chunk, LogitsMode mode) {
  ThreadPool pool(2);
  kv::V4SequenceCache cache(f.ck.config);
  std::vector<BF16> all, part;
  std::vector<float> logits;
  const int64_t n = static_cast<int64_t>(f.tokens.size());
  for (int64_t s = 0; s < n; s += chunk) {
    const int64_t len = std::min(chunk, n - s);
    const Model::BatchItem item{&cache, {f.tokens.data() + s, static_cast<size_t>(len)}, mode,
                                &logits, &part};
    EXPECT_TRUE(f.model->ForwardBatch(pool, {&item, 1}).ok());
    EXPECT_EQ(static_cast<int64_t>(part.size()), len * f.width);
    all.insert(all.end(), part.begin(), part.end());
  }
  return all;
}

bool SameBits(const std::vector<BF16>& a, const std::vector<BF16>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(BF16)) == 0;
}

TEST(V4HiddenRows, IdenticalAcrossChunkingAndLogitsModes) {
  const Fixture& f = Tiny();
  const std::vector<BF16> whole = HiddenChunked(f, 150, LogitsMode::kAll);
  ASSERT_EQ(static_cast<int64_t>(whole.size()), 150 * f.width);
  EXPECT_TRUE(SameBits(HiddenChunked(f, 1, LogitsMode::kLast), whole));
  EXPECT_TRUE(SameBits(HiddenChunked(f, 13, LogitsMode::kNone), whole));
}

TEST(V4HiddenRows, IdenticalInABatchAndThroughTheRunner) {
  const Fixture& f = Tiny();
  const std::vector<BF16> whole = HiddenChunked(f, 150, LogitsMode::kAll);
  Result<std::unique_ptr<runner::LoadedModel>> m =
      runner::LoadCheckpoint(fixtures::BuiltinDefaultModel().value(), "built-in");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  const runner::CausalLm& lm = *(*m)->lm;
  EXPECT_EQ(lm.hidden_width(), f.width);
  ASSERT_NE(lm.v4_model(), nullptr);
  // Two sequences stepped together: A in chunks of 9, B (after 3 steps) one token at a time;
  // a third rides along without hidden rows.
  ThreadPool pool(2);
  auto a = lm.NewSequence(), b = lm.NewSequence(), c = lm.NewSequence();
  std::vector<BF16> got_a, got_b, ha, hb;
  std::vector<float> la, lc;
  for (int64_t step = 0; a->num_tokens() < 150 || b->num_tokens() < 150; ++step) {
    std::vector<runner::CausalLm::BatchItem> batch;
    ha.clear();
    hb.clear();
    auto add = [&](runner::SequenceState* s, int64_t len, std::vector<float>* logits,
                   std::vector<BF16>* hidden) {
      const int64_t p = s->num_tokens();
      len = std::min<int64_t>(len, 150 - p);
      if (len <= 0) return;
      batch.push_back({s, {f.tokens.data() + p, static_cast<size_t>(len)}, LogitsMode::kLast,
                       logits, hidden});
    };
    add(a.get(), 9, &la, &ha);
    if (step >= 3) add(b.get(), 1, nullptr, &hb);
    add(c.get(), 4, &lc, nullptr);
    ASSERT_TRUE(lm.ForwardBatch(pool, batch).ok());
    got_a.insert(got_a.end(), ha.begin(), ha.end());
    got_b.insert(got_b.end(), hb.begin(), hb.end());
  }
  EXPECT_TRUE(SameBits(got_a, whole));
  EXPECT_TRUE(SameBits(got_b, whole));
}

}  // namespace
}  // namespace dsv4::v4
