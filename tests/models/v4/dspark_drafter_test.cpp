// runner::DsparkDrafter (runner/dspark_drafter.h) on the tiny 0731-layout model, loaded as
// run/serve load it: Propose over a prompt and then decode steps drafts what the module gives
// on a ring fed every committed position at once; k < block size keeps a prefix; the
// confidence rule cuts at the first draft below the threshold; Truncate and continue equals
// never having seen the truncated positions; bad input leaves the state alone.
#include "runner/dspark_drafter.h"

#include <cstring>
#include <memory>
#include <vector>

#include <gtest/gtest.h>

#include "drafter_fixtures.h"
#include "runner/make_drafter.h"

namespace dsv4::runner {
namespace {

using checkpoint::DraftFamily;
using testing::Drive;
using testing::LoadTiny;
using testing::RandomTokens;
using testing::Target;

// The drafts of the module run by hand: a fresh ring fed the target's rows of positions
// [0, n) in one call, then the block anchored by tokens[n].
std::vector<int32_t> ByHand(const DsparkDrafter& d, const CausalLm& lm,
                            const std::vector<int32_t>& tokens, int64_t n,
                            std::vector<float>* confidence = nullptr) {
  ThreadPool pool(2);
  Target target(lm, HiddenRows::kTargetLayerMeans);
  const std::vector<BF16> rows = target.Feed(pool, {tokens.data(), static_cast<size_t>(n)});
  const checkpoint::ModelConfig ring_config = d.module().RingConfig(0);
  kv::V4SequenceCache ring(ring_config);
  const v4::Dspark::ContextItem ctx{&ring, rows};
  EXPECT_TRUE(d.module().Extend(pool, {&ctx, 1}).ok());
  std::vector<int32_t> drafts;
  const v4::Dspark::DraftItem item{&ring, tokens[static_cast<size_t>(n)], &drafts, confidence};
  EXPECT_TRUE(d.module().Draft(pool, {&item, 1}).ok());
  return drafts;
}

// The ring slots of positions [n - W, n) of every block of a state (what the next block reads).
std::vector<uint8_t> Window(const DsparkDraftState& s, int64_t blocks, int64_t W) {
  std::vector<uint8_t> bytes;
  const int64_t n = s.num_tokens();
  for (int64_t b = 0; b < blocks; ++b) {
    for (int64_t p = std::max<int64_t>(0, n - W); p < n; ++p) {
      const uint8_t* row = s.ring().WindowRow(b, p);
      bytes.insert(bytes.end(), row, row + s.ring().entry_bytes());
    }
  }
  return bytes;
}

TEST(DsparkDrafter, ProposeOverPromptThenDecodeEqualsTheModule) {
  std::unique_ptr<LoadedModel> m = LoadTiny(DraftFamily::kDspark);
  auto made = MakeDrafter(*m, DraftFamily::kDspark).value();
  const auto& d = static_cast<const DsparkDrafter&>(*made);
  EXPECT_EQ(d.name(), "dspark");
  EXPECT_TRUE(d.needs_hidden());
  EXPECT_EQ(d.max_draft_tokens(), m->lm->config().dspark.block_size);
  const std::vector<int32_t> tokens = RandomTokens(80, 4);
  auto s5 = d.NewState(), s2 = d.NewState();
  std::vector<int64_t> committed;
  const auto five = Drive(d, *s5, *m->lm, tokens, 20, 5, &committed);
  const auto two = Drive(d, *s2, *m->lm, tokens, 20, 2, nullptr);
  ASSERT_EQ(five.size(), committed.size());
  for (size_t i = 0; i < five.size(); ++i) {
    if (i % 5 != 0 && i + 1 != five.size()) continue;  // a sample of the steps: each costs a prefill
    EXPECT_EQ(five[i], ByHand(d, *m->lm, tokens, committed[i])) << "step " << i;
  }
  for (size_t i = 0; i < five.size(); ++i) {
    ASSERT_EQ(five[i].size(), 5u);
    EXPECT_EQ(two[i], std::vector<int32_t>(five[i].begin(), five[i].begin() + 2)) << i;
  }
}

TEST(DsparkDrafter, ConfidenceCutsTheProposal) {
  std::unique_ptr<LoadedModel> m = LoadTiny(DraftFamily::kDspark);
  const std::vector<int32_t> tokens = RandomTokens(30, 6);
  auto all = MakeDrafter(*m, DraftFamily::kDspark).value();
  std::vector<float> conf;
  const std::vector<int32_t> block =
      ByHand(static_cast<const DsparkDrafter&>(*all), *m->lm, tokens, 29, &conf);
  ASSERT_EQ(conf.size(), 5u);
  // A threshold just above confidence 2 keeps drafts 0 and 1 only when they are above it.
  for (float threshold : {0.0f, conf[2] + 1e-6f, 1.0f}) {
    auto d = MakeDrafter(*m, DraftFamily::kDspark, {}, {.min_confidence = threshold}).value();
    auto s = d->NewState();
    ThreadPool pool(2);
    Target target(*m->lm, HiddenRows::kTargetLayerMeans);
    const std::vector<BF16> rows = target.Feed(pool, {tokens.data(), 29});
    std::vector<int32_t> drafts;
    ASSERT_TRUE(d->Propose(pool, *s, tokens, rows, 5, &drafts).ok());
    std::vector<int32_t> want;
    for (size_t i = 0; i < block.size() && conf[i] >= threshold; ++i) want.push_back(block[i]);
    EXPECT_EQ(drafts, want) << threshold;
  }
}

// Truncate(n) then going on with other tokens after n equals a drafter that only ever saw
// the new sequence: within the ring's history exactly (the same ring rows, the same drafts);
// further back the state restarts from 0.
TEST(DsparkDrafter, TruncateThenContinueEqualsNeverHavingSeen) {
  std::unique_ptr<LoadedModel> m = LoadTiny(DraftFamily::kDspark);
  auto d = MakeDrafter(*m, DraftFamily::kDspark).value();
  const int64_t W = m->lm->config().sliding_window;  // 32; history 32 by default
  const int64_t blocks = m->lm->config().dspark.num_blocks;
  const std::vector<int32_t> first = RandomTokens(110, 21);
  // The state ends at 109 with 2W = 64 slots: it holds positions 45 .. 108, so cuts from 77
  // (whose window is 45 .. 76) on are exact.
  for (int64_t n : {1, 31, 33, 64, 76, 77, 100, 108}) {
    auto a = d->NewState();
    Drive(*d, *a, *m->lm, first, 10, 3, nullptr);
    const int64_t seen = a->num_tokens();
    ASSERT_EQ(seen, 109);
    d->Truncate(*a, n);
    const bool exact = n >= seen - W;
    EXPECT_EQ(a->num_tokens(), exact ? n : 0) << n;
    std::vector<int32_t> second(first.begin(), first.begin() + n);
    const std::vector<int32_t> tail = RandomTokens(12, 100 + n);
    second.insert(second.end(), tail.begin(), tail.end());
    auto b = d->NewState();
    ThreadPool pool(2);
    Target ta(*m->lm, HiddenRows::kTargetLayerMeans), tb(*m->lm, HiddenRows::kTargetLayerMeans);
    const std::vector<BF16> prefix = tb.Feed(pool, {second.data(), static_cast<size_t>(n)});
    ta.Feed(pool, {second.data(), static_cast<size_t>(n)});
    std::vector<int32_t> da, db;
    ASSERT_TRUE(d->Propose(pool, *b, {second.data(), static_cast<size_t>(n + 1)}, prefix, 3, &db).ok());
    ASSERT_TRUE(d->Propose(pool, *a, {second.data(), static_cast<size_t>(n + 1)},
                           exact ? std::span<const BF16>() : std::span<const BF16>(prefix), 3,
                           &da).ok());
    EXPECT_EQ(da, db) << n;
    for (int64_t p = n; p + 1 < static_cast<int64_t>(second.size()); ++p) {
      const std::vector<BF16> row = ta.Feed(pool, {second.data() + p, 1});
      tb.Feed(pool, {second.data() + p, 1});
      const std::span<const int32_t> seen_tokens(second.data(), static_cast<size_t>(p + 2));
      ASSERT_TRUE(d->Propose(pool, *a, seen_tokens, row, 3, &da).ok());
      ASSERT_TRUE(d->Propose(pool, *b, seen_tokens, row, 3, &db).ok());
      EXPECT_EQ(da, db) << "cut " << n << ", position " << p;
    }
    EXPECT_EQ(Window(static_cast<DsparkDraftState&>(*a), blocks, W),
              Window(static_cast<DsparkDraftState&>(*b), blocks, W))
        << n;
  }
}

// SaveState / RestoreState (a cached prefix keeps the drafter's state): a restored state
// proposes exactly what the saved one does from there on and holds the same window of every
// block, for states before and past the window; bad bytes are refused naming what is wrong.
TEST(DsparkDrafter, RestoredStateProposesExactlyWhatTheSavedOneDoes) {
  std::unique_ptr<LoadedModel> m = LoadTiny(DraftFamily::kDspark);
  auto d = MakeDrafter(*m, DraftFamily::kDspark).value();
  ASSERT_TRUE(d->saves_state());
  const int64_t W = m->lm->config().sliding_window;
  const int64_t blocks = m->lm->config().dspark.num_blocks;
  for (int64_t len : {1, 6, 40, 90}) {
    SCOPED_TRACE(len);
    const std::vector<int32_t> tokens = RandomTokens(len + 1, 40 + len);
    auto a = d->NewState();
    Drive(*d, *a, *m->lm, tokens, std::min<int64_t>(len, 5), 3, nullptr);
    ASSERT_EQ(a->num_tokens(), len);
    std::vector<uint8_t> bytes = {7};  // SaveState appends
    ASSERT_TRUE(d->SaveState(*a, &bytes).ok());
    Result<std::unique_ptr<DraftState>> b =
        d->RestoreState(std::span<const uint8_t>(bytes).subspan(1));
    ASSERT_TRUE(b.ok()) << b.status().message();
    EXPECT_EQ((*b)->num_tokens(), len);
    EXPECT_EQ(Window(static_cast<DsparkDraftState&>(*a), blocks, W),
              Window(static_cast<DsparkDraftState&>(**b), blocks, W));
    // Both continue over the same target rows (the target re-fed to the same point).
    std::vector<int32_t> more = tokens;
    const std::vector<int32_t> tail = RandomTokens(8, 90 + len);
    more.insert(more.end(), tail.begin(), tail.end());
    ThreadPool pool(2);
    Target target(*m->lm, HiddenRows::kTargetLayerMeans);
    target.Feed(pool, {more.data(), static_cast<size_t>(len)});
    std::vector<int32_t> da, db;
    for (int64_t p = len; p + 1 < static_cast<int64_t>(more.size()); ++p) {
      const std::vector<BF16> row = target.Feed(pool, {more.data() + p, 1});
      const std::span<const int32_t> seen(more.data(), static_cast<size_t>(p + 2));
      ASSERT_TRUE(d->Propose(pool, *a, seen, row, 5, &da).ok());
      ASSERT_TRUE(d->Propose(pool, **b, seen, row, 5, &db).ok());
      EXPECT_EQ(da, db) << p;
    }
  }
  const std::vector<uint8_t> good = testing::ExpectTruncatedAndCorruptStatesRefused(*d);
  std::vector<uint8_t> bad = good;
  bad[4] = 'M';
  testing::ExpectRestoreRefused(*d, bad, StatusCode::kDataLoss, "DSV4DSPS");
  bad = good;
  bad[12] = 1;  // one layer: an MTP-shaped state
  testing::ExpectRestoreRefused(*d, bad, StatusCode::kFailedPrecondition, "1 layers");
}

TEST(DsparkDrafter, ProposeChecksItsInput) {
  std::unique_ptr<LoadedModel> m = LoadTiny(DraftFamily::kDspark);
  auto d = MakeDrafter(*m, DraftFamily::kDspark).value();
  auto s = d->NewState();
  ThreadPool pool(2);
  Target target(*m->lm, HiddenRows::kTargetLayerMeans);
  const std::vector<int32_t> tokens = RandomTokens(10, 1);
  const std::vector<BF16> rows = target.Feed(pool, {tokens.data(), 9});
  std::vector<int32_t> drafts;
  // Nine committed positions need nine rows.
  Status st = d->Propose(pool, *s, tokens, std::span<const BF16>(rows).first(rows.size() / 9 * 8),
                         1, &drafts);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s->num_tokens(), 0);
  std::vector<int32_t> bad = tokens;
  bad.back() = 512;
  st = d->Propose(pool, *s, bad, rows, 1, &drafts);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s->num_tokens(), 0);
  ASSERT_TRUE(d->Propose(pool, *s, tokens, rows, 0, &drafts).ok());  // consumes only
  EXPECT_TRUE(drafts.empty());
  EXPECT_EQ(s->num_tokens(), 9);
  // Nothing new still drafts (the ring has the context); fewer tokens than consumed: Truncate.
  ASSERT_TRUE(d->Propose(pool, *s, tokens, {}, 2, &drafts).ok());
  EXPECT_EQ(drafts.size(), 2u);
  st = d->Propose(pool, *s, {tokens.data(), 5}, {}, 1, &drafts);
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  d->Truncate(*s, 0);
  EXPECT_EQ(s->num_tokens(), 0);
}

}  // namespace
}  // namespace dsv4::runner
