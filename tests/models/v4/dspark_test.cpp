// DSpark's draft blocks (models/v4/dspark.h, spec §11.4) on the tiny 0731-layout model:
// the target's target-layer means equal the reference's (and do not change its logits or
// depend on chunking); a draft step is bit-identical to the plain reference
// (reference/dspark.h) for both weight formats, with contexts shorter and longer than the
// window; any split of the context into Extend calls and any batching give the same bits.
#include "models/v4/dspark.h"

#include <cstring>
#include <memory>
#include <vector>

#include <gtest/gtest.h>

#include "checkpoint/presets.h"
#include "checkpoint/tensor_store.h"
#include "core/rng.h"
#include "models/v4/reference/dspark.h"
#include "models/v4/reference/forward.h"
#include "testing/weight_generator.h"

namespace dsv4::v4 {
namespace {

using checkpoint::DraftFamily;
using checkpoint::ModelConfig;
using models::HiddenRows;
using models::LogitsMode;

// The tiny model (window 32) with DSpark weights in format `fmt`, its drafter, and the target's
// target-layer means of one token sequence (fed in one call).
struct Tiny {
  explicit Tiny(checkpoint::WeightFormat fmt, int64_t num_tokens = 45) {
    c = checkpoint::WithDrafter(checkpoint::TinyV4Config(), DraftFamily::kDspark);
    c.weight_format = fmt;
    store = checkpoint::TensorStore::Create(
                "w", fixtures::GenerateWeights(c, fixtures::kDefaultSeed).value())
                .value();
    target = Model::Create(c, *store).value();
    draft = LoadDraftWeights(c, *store, DraftFamily::kDspark).value();
    dspark = std::make_unique<Dspark>(*target, *draft->dspark);
    ring_config = dspark->RingConfig(c.sliding_window);
    Rng rng(17);
    for (int64_t i = 0; i < num_tokens; ++i) {
      tokens.push_back(static_cast<int32_t>(rng.Below(static_cast<uint64_t>(c.vocab_size))));
    }
    ThreadPool pool(2);
    kv::V4SequenceCache cache(c);
    Model::BatchItem item{&cache, tokens, LogitsMode::kAll, &logits, &hidden};
    item.hidden_rows = HiddenRows::kTargetLayerMeans;
    EXPECT_TRUE(target->ForwardBatch(pool, {&item, 1}).ok());
  }
  int64_t width() const { return dspark->hidden_width(); }
  std::span<const BF16> Rows(int64_t from, int64_t to) const {
    return {hidden.data() + from * width(), static_cast<size_t>((to - from) * width())};
  }
  // The context of positions [0, n) in Extend calls of `chunk` positions, then the draft block
  // anchored by tokens[n].
  void Run(int64_t n, int64_t chunk, std::vector<int32_t>* drafts, std::vector<float>* conf,
           std::vector<float>* draft_logits) const {
    ThreadPool pool(2);
    kv::V4SequenceCache ring(ring_config);
    for (int64_t p = 0; p < n; p += chunk) {
      const Dspark::ContextItem item{&ring, Rows(p, std::min(n, p + chunk))};
      ASSERT_TRUE(dspark->Extend(pool, {&item, 1}).ok());
    }
    ASSERT_EQ(ring.num_tokens(), n);
    const Dspark::DraftItem item{&ring, tokens[n], drafts, conf, draft_logits};
    ASSERT_TRUE(dspark->Draft(pool, {&item, 1}).ok());
  }

  ModelConfig c;
  std::unique_ptr<checkpoint::TensorStore> store;
  std::unique_ptr<Model> target;
  std::unique_ptr<DraftWeights> draft;
  std::unique_ptr<Dspark> dspark;
  ModelConfig ring_config;
  std::vector<int32_t> tokens;
  std::vector<float> logits;  // the target's, every position
  std::vector<BF16> hidden;   // BF16 [tokens, T*D]
};

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(V4Dspark, TargetLayerMeansMatchTheReferenceAndChangeNothing) {
  const Tiny f(checkpoint::WeightFormat::kFp8);
  reference::ForwardTrace trace;
  ASSERT_TRUE(reference::Forward(f.c, *f.store, f.tokens, &trace).ok());
  std::vector<const std::vector<float>*> streams;
  for (int64_t l : f.c.dspark.target_layer_ids) streams.push_back(&trace.layers[l].streams);
  const std::vector<float> ref = reference::TargetLayerMeans(f.c, streams);
  ASSERT_EQ(ref.size(), f.hidden.size());
  int64_t differ = 0;
  for (size_t i = 0; i < ref.size(); ++i) differ += Bf16ToF32(f.hidden[i]) != ref[i];
  EXPECT_EQ(differ, 0);
  // Asking for them leaves the logits alone; chunked prefill gives the same rows.
  ThreadPool pool(2);
  kv::V4SequenceCache cache(f.c);
  std::vector<float> logits, all_logits;
  std::vector<BF16> rows, all_rows;
  for (size_t p = 0; p < f.tokens.size(); p += 7) {
    const size_t len = std::min<size_t>(7, f.tokens.size() - p);
    Model::BatchItem item{&cache, {f.tokens.data() + p, len}, LogitsMode::kAll, &logits, &rows};
    item.hidden_rows = HiddenRows::kTargetLayerMeans;
    ASSERT_TRUE(f.target->ForwardBatch(pool, {&item, 1}).ok());
    all_logits.insert(all_logits.end(), logits.begin(), logits.end());
    all_rows.insert(all_rows.end(), rows.begin(), rows.end());
  }
  EXPECT_TRUE(SameBits(all_logits, f.logits));
  ASSERT_EQ(all_rows.size(), f.hidden.size());
  EXPECT_EQ(std::memcmp(all_rows.data(), f.hidden.data(), all_rows.size() * sizeof(BF16)), 0);
  kv::V4SequenceCache plain(f.c);
  ASSERT_TRUE(f.target->Forward(pool, plain, f.tokens, LogitsMode::kAll, &logits).ok());
  EXPECT_TRUE(SameBits(logits, f.logits));
  EXPECT_EQ(f.target->hidden_width(HiddenRows::kTargetLayerMeans),
            static_cast<int64_t>(f.c.dspark.target_layer_ids.size()) * f.c.hidden_size);
}

TEST(V4Dspark, FastPathMatchesTheReferenceExactly) {
  for (checkpoint::WeightFormat fmt :
       {checkpoint::WeightFormat::kFp8, checkpoint::WeightFormat::kBf16}) {
    const Tiny f(fmt);
    reference::ForwardTrace trace;
    ASSERT_TRUE(reference::Forward(f.c, *f.store, f.tokens, &trace).ok());
    std::vector<const std::vector<float>*> streams;
    for (int64_t l : f.c.dspark.target_layer_ids) streams.push_back(&trace.layers[l].streams);
    const std::vector<float> ref_hidden = reference::TargetLayerMeans(f.c, streams);
    // Contexts: none, shorter than the window (32), longer.
    for (int64_t n : {0, 5, 44}) {
      std::vector<int32_t> drafts;
      std::vector<float> conf, logits;
      f.Run(n, std::max<int64_t>(n, 1), &drafts, &conf, &logits);
      Result<reference::DsparkDraftResult> ref = reference::DsparkDraft(
          f.c, *f.store, std::span<const float>(ref_hidden).first(n * f.width()), f.tokens[n]);
      ASSERT_TRUE(ref.ok()) << ref.status().ToString();
      EXPECT_TRUE(SameBits(logits, ref->logits)) << "n " << n << " format " << static_cast<int>(fmt);
      EXPECT_EQ(drafts, ref->drafts) << n;
      EXPECT_TRUE(SameBits(conf, ref->confidence)) << n;
      ASSERT_EQ(static_cast<int64_t>(drafts.size()), f.c.dspark.block_size);
      // The Markov term is there: the logits differ from the head's.
      EXPECT_FALSE(SameBits(ref->logits, ref->base_logits));
      for (float p : conf) EXPECT_TRUE(p > 0.0f && p < 1.0f) << p;
    }
  }
}

// Any split of the context into Extend calls, and batching with another sequence, gives the
// same bits.
TEST(V4Dspark, ChunkedAndBatchedAreBitIdentical) {
  const Tiny f(checkpoint::WeightFormat::kFp8);
  const int64_t n = 44;
  std::vector<int32_t> whole_d, part_d;
  std::vector<float> whole_c, part_c, whole_l, part_l;
  f.Run(n, n, &whole_d, &whole_c, &whole_l);
  for (int64_t chunk : {1, 7, 33}) {
    f.Run(n, chunk, &part_d, &part_c, &part_l);
    EXPECT_EQ(part_d, whole_d) << chunk;
    EXPECT_TRUE(SameBits(part_c, whole_c)) << chunk;
    EXPECT_TRUE(SameBits(part_l, whole_l)) << chunk;
  }
  // Two rings in every call: A grows 5 positions a step, B (20 shorter) one; both draft every
  // step; each step's drafts equal drafting alone.
  ThreadPool pool(2);
  kv::V4SequenceCache a(f.ring_config), b(f.ring_config), solo(f.ring_config);
  std::vector<int32_t> da, db, ds;
  std::vector<float> ca, cb, cs, la, lb, ls;
  int64_t pa = 0, pb = 0;
  for (int step = 0; step < 6; ++step) {
    const int64_t na = std::min<int64_t>(n, pa + 5), nb = pb + 1;
    const Dspark::ContextItem ctx[] = {{&a, f.Rows(pa, na)}, {&b, f.Rows(pb, nb)}};
    ASSERT_TRUE(f.dspark->Extend(pool, ctx).ok());
    const Dspark::DraftItem items[] = {{&a, f.tokens[na], &da, &ca, &la},
                                       {&b, f.tokens[nb], &db, &cb, &lb}};
    ASSERT_TRUE(f.dspark->Draft(pool, items).ok());
    for (int which = 0; which < 2; ++which) {
      const int64_t end = which == 0 ? na : nb;
      solo.Release();
      const Dspark::ContextItem one{&solo, f.Rows(0, end)};
      ASSERT_TRUE(f.dspark->Extend(pool, {&one, 1}).ok());
      const Dspark::DraftItem d{&solo, f.tokens[end], &ds, &cs, &ls};
      ASSERT_TRUE(f.dspark->Draft(pool, {&d, 1}).ok());
      EXPECT_EQ(ds, which == 0 ? da : db) << step;
      EXPECT_TRUE(SameBits(cs, which == 0 ? ca : cb)) << step;
      EXPECT_TRUE(SameBits(ls, which == 0 ? la : lb)) << step;
    }
    pa = na;
    pb = nb;
  }
}

TEST(V4Dspark, BadInputIsRefused) {
  const Tiny f(checkpoint::WeightFormat::kFp8, 4);
  ThreadPool pool(2);
  kv::V4SequenceCache ring(f.ring_config);
  const Dspark::ContextItem bad{&ring, {f.hidden.data(), 3}};
  const Status s = f.dspark->Extend(pool, {&bad, 1});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_EQ(ring.num_tokens(), 0);
  std::vector<int32_t> drafts;
  const Dspark::DraftItem item{&ring, static_cast<int32_t>(f.c.vocab_size), &drafts};
  EXPECT_EQ(f.dspark->Draft(pool, {&item, 1}).code(), StatusCode::kInvalidArgument);
  // A model without DSpark refuses target-layer rows.
  const ModelConfig plain = checkpoint::TinyV4Config();
  auto store = checkpoint::TensorStore::Create(
                   "w", fixtures::GenerateWeights(plain, fixtures::kDefaultSeed).value())
                   .value();
  auto model = Model::Create(plain, *store).value();
  kv::V4SequenceCache cache(plain);
  std::vector<BF16> rows;
  Model::BatchItem mi{&cache, f.tokens, LogitsMode::kNone, nullptr, &rows};
  mi.hidden_rows = HiddenRows::kTargetLayerMeans;
  EXPECT_EQ(model->ForwardBatch(pool, {&mi, 1}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(cache.num_tokens(), 0);
}

}  // namespace
}  // namespace dsv4::v4
