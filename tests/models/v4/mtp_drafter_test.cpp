// runner::MtpDrafter (runner/mtp_drafter.h) on the tiny April-layout model, loaded as
// run/serve load it: Propose over a prompt and then decode steps drafts what the module's
// forward over the whole sequence gives; chained drafts (k > 1) leave no trace; Truncate and
// continue equals never having seen the truncated positions; MakeDrafter per family.
#include "runner/mtp_drafter.h"

#include <cstring>
#include <memory>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "runner/make_drafter.h"
#include "drafter_fixtures.h"

namespace dsv4::runner {
namespace {

using checkpoint::DraftFamily;
using models::LogitsMode;

using testing::Drive;
using testing::LoadTiny;
using testing::RandomTokens;
using testing::Target;

// The drafter's module run by hand on a ring of its own.
struct ByHand {
  explicit ByHand(const Drafter& d)
      : mtp(static_cast<const MtpDrafter&>(d).module()),
        ring_config(mtp.RingConfig(0)),
        ring(ring_config) {}
  // Positions ring.num_tokens() .. from X rows `rows` and next tokens `next`.
  void Run(std::span<const BF16> rows, std::span<const int32_t> next, LogitsMode mode) {
    const v4::Mtp::BatchItem item{&ring, rows, next, mode, &logits, &x};
    ASSERT_TRUE(mtp.ForwardBatch(pool, {&item, 1}).ok());
  }
  // Every position of `tokens` but the last, from the target's rows of one call.
  void RunSequence(const CausalLm& lm, const std::vector<int32_t>& tokens, LogitsMode mode) {
    Target target(lm);
    const size_t n = tokens.size() - 1;
    hidden = target.Feed(pool, {tokens.data(), n});
    Run(hidden, {tokens.data() + 1, n}, mode);
  }
  ThreadPool pool{2};
  const v4::Mtp& mtp;
  checkpoint::ModelConfig ring_config;
  kv::V4SequenceCache ring;
  std::vector<BF16> hidden, x;  // the target's rows; the block's output streams
  std::vector<float> logits;
};

int32_t ArgMaxRow(const std::vector<float>& logits, int64_t row, int64_t vocab) {
  const float* r = logits.data() + row * vocab;
  return static_cast<int32_t>(std::max_element(r, r + vocab) - r);
}

// The ring slots of positions [n - W, n) of a state (the rows its next position reads).
std::vector<uint8_t> Window(const MtpDraftState& s, int64_t W) {
  std::vector<uint8_t> bytes;
  const int64_t n = s.num_tokens();
  for (int64_t p = std::max<int64_t>(0, n - W); p < n; ++p) {
    const uint8_t* row = s.ring().WindowRow(0, p);
    bytes.insert(bytes.end(), row, row + s.ring().entry_bytes());
  }
  return bytes;
}

TEST(MtpDrafter, ProposeOverPromptThenDecodeEqualsTheFullForward) {
  std::unique_ptr<LoadedModel> m = LoadTiny(DraftFamily::kMtp);
  auto d = MakeDrafter(*m, DraftFamily::kMtp).value();
  EXPECT_EQ(d->name(), "mtp");
  EXPECT_TRUE(d->needs_hidden());
  const std::vector<int32_t> tokens = RandomTokens(120, 4);
  auto state = d->NewState();
  std::vector<int64_t> committed;
  const auto drafts = Drive(*d, *state, *m->lm, tokens, 40, 1, &committed);
  // The module over every position at once.
  ByHand all(*d);
  all.RunSequence(*m->lm, tokens, LogitsMode::kAll);
  ASSERT_EQ(drafts.size(), committed.size());
  for (size_t i = 0; i < drafts.size(); ++i) {
    ASSERT_EQ(drafts[i].size(), 1u) << i;
    EXPECT_EQ(drafts[i][0], ArgMaxRow(all.logits, committed[i] - 1, 512)) << "step " << i;
  }
}

// Chained drafts (k = 3) reuse the block on its own streams at the next positions: they
// equal that chain run by hand, and leave the state exactly as k = 1 leaves it.
TEST(MtpDrafter, ChainedDraftsMatchTheChainAndLeaveNoTrace) {
  std::unique_ptr<LoadedModel> m = LoadTiny(DraftFamily::kMtp);
  auto d1 = MakeDrafter(*m, DraftFamily::kMtp, {.max_draft_tokens = 1}).value();
  auto d3 = MakeDrafter(*m, DraftFamily::kMtp, {.max_draft_tokens = 3}).value();
  EXPECT_EQ(d3->max_draft_tokens(), 3);
  const std::vector<int32_t> tokens = RandomTokens(110, 8);
  auto s1 = d1->NewState(), s3 = d3->NewState();
  const auto one = Drive(*d1, *s1, *m->lm, tokens, 30, 5, nullptr);  // capped at 1
  const auto three = Drive(*d3, *s3, *m->lm, tokens, 30, 5, nullptr);
  ASSERT_EQ(one.size(), three.size());
  for (size_t i = 0; i < one.size(); ++i) {
    ASSERT_EQ(one[i].size(), 1u);
    ASSERT_EQ(three[i].size(), 3u);
    EXPECT_EQ(three[i][0], one[i][0]) << "step " << i;
  }
  const int64_t W = m->lm->config().sliding_window;
  EXPECT_EQ(Window(static_cast<MtpDraftState&>(*s3), W), Window(static_cast<MtpDraftState&>(*s1), W));

  // The last step's chain by hand: X and token t+1 at the last committed position, then the
  // block's own streams and the previous draft at the positions after it.
  ByHand h(*d3);
  h.RunSequence(*m->lm, tokens, LogitsMode::kLast);
  std::vector<int32_t> chain{ArgMaxRow(h.logits, 0, 512)};
  for (int i = 1; i < 3; ++i) {
    const std::vector<BF16> in = h.x;
    h.Run(in, {&chain.back(), 1}, LogitsMode::kLast);
    chain.push_back(ArgMaxRow(h.logits, 0, 512));
  }
  EXPECT_EQ(three.back(), chain);
}

// Truncate(n) then going on with other tokens after n equals a drafter that only ever saw
// the new sequence: within the ring's history exactly (the same ring rows, the same drafts);
// further back the state restarts from 0.
TEST(MtpDrafter, TruncateThenContinueEqualsNeverHavingSeen) {
  std::unique_ptr<LoadedModel> m = LoadTiny(DraftFamily::kMtp);
  auto d = MakeDrafter(*m, DraftFamily::kMtp, {.max_draft_tokens = 2}).value();
  const int64_t W = m->lm->config().sliding_window;  // 32; history 32 by default
  const std::vector<int32_t> first = RandomTokens(140, 21);
  // Cut points on both sides of the window and of the ring (2W = 64 slots), and of the
  // exact range: the last Propose (at 139) also wrote a chained row at 139, so the ring holds
  // the rows of positions 76 .. 138 and cuts from 108 on are exact.
  for (int64_t n : {1, 31, 33, 64, 65, 107, 108, 134, 138}) {
    auto a = d->NewState();
    std::vector<int64_t> committed;
    Drive(*d, *a, *m->lm, first, 10, 2, &committed);
    const int64_t seen = a->num_tokens();
    d->Truncate(*a, n);
    // Back within the history: exact; further: restarted.
    const bool exact = n >= seen - W + 1;
    EXPECT_EQ(a->num_tokens(), exact ? n : 0) << n;
    // The new sequence: the first n + 1 tokens (the row of position n - 1 was made with token
    // n), then others.
    std::vector<int32_t> second(first.begin(), first.begin() + n + 1);
    const std::vector<int32_t> tail = RandomTokens(40, 100 + n);
    second.insert(second.end(), tail.begin(), tail.end());
    // B never saw `first` past n; A goes on from its state (or from 0 after a restart).
    auto b = d->NewState();
    ThreadPool pool(2);
    Target ta(*m->lm), tb(*m->lm);
    std::vector<BF16> prefix = tb.Feed(pool, {second.data(), static_cast<size_t>(n)});
    ta.Feed(pool, {second.data(), static_cast<size_t>(n)});
    std::vector<int32_t> da, db;
    ASSERT_TRUE(d->Propose(pool, *b, {second.data(), static_cast<size_t>(n + 1)}, prefix, 2, &db).ok());
    if (!exact) {
      ASSERT_TRUE(d->Propose(pool, *a, {second.data(), static_cast<size_t>(n + 1)}, prefix, 2, &da).ok());
      EXPECT_EQ(da, db) << n;
    }
    for (int64_t p = n; p + 1 < static_cast<int64_t>(second.size()); ++p) {
      const std::vector<BF16> row = ta.Feed(pool, {second.data() + p, 1});
      tb.Feed(pool, {second.data() + p, 1});
      const std::span<const int32_t> seen_tokens(second.data(), static_cast<size_t>(p + 2));
      ASSERT_TRUE(d->Propose(pool, *a, seen_tokens, row, 2, &da).ok());
      ASSERT_TRUE(d->Propose(pool, *b, seen_tokens, row, 2, &db).ok());
      EXPECT_EQ(da, db) << "cut " << n << ", position " << p;
    }
    EXPECT_EQ(Window(static_cast<MtpDraftState&>(*a), W), Window(static_cast<MtpDraftState&>(*b), W))
        << n;
  }
}

// SaveState / RestoreState: a restored state proposes exactly what the saved one does,
// whatever follows (short states and states past the window, after chained drafts), and its
// ring holds the same window; bad bytes are refused naming what is wrong.
TEST(MtpDrafter, RestoredStateProposesExactlyWhatTheSavedOneDoes) {
  std::unique_ptr<LoadedModel> m = LoadTiny(DraftFamily::kMtp);
  auto d = MakeDrafter(*m, DraftFamily::kMtp, {.max_draft_tokens = 3}).value();
  ASSERT_TRUE(d->saves_state());
  const int64_t W = m->lm->config().sliding_window;
  const std::vector<int32_t> tokens = RandomTokens(120, 31);
  for (int64_t prompt : {0, 5, 31, 32, 70}) {
    SCOPED_TRACE(prompt);
    ThreadPool pool(2);
    Target target(*m->lm);
    auto a = d->NewState();
    std::vector<int32_t> da, db;
    if (prompt > 0) {
      // The prompt, then three decode steps with chained drafts.
      const std::vector<BF16> rows = target.Feed(pool, {tokens.data(), static_cast<size_t>(prompt)});
      ASSERT_TRUE(d->Propose(pool, *a, {tokens.data(), static_cast<size_t>(prompt + 1)}, rows,
                             3, &da).ok());
      for (int64_t p = prompt; p < prompt + 3; ++p) {
        const std::vector<BF16> row = target.Feed(pool, {tokens.data() + p, 1});
        ASSERT_TRUE(d->Propose(pool, *a, {tokens.data(), static_cast<size_t>(p + 2)}, row, 3,
                               &da).ok());
      }
    }
    std::vector<uint8_t> bytes = {7};  // SaveState appends
    ASSERT_TRUE(d->SaveState(*a, &bytes).ok());
    Result<std::unique_ptr<DraftState>> b =
        d->RestoreState(std::span<const uint8_t>(bytes).subspan(1));
    ASSERT_TRUE(b.ok()) << b.status().message();
    EXPECT_EQ((*b)->num_tokens(), a->num_tokens());
    EXPECT_EQ(Window(static_cast<MtpDraftState&>(*a), W),
              Window(static_cast<MtpDraftState&>(**b), W));
    for (int64_t p = a->num_tokens(); p + 1 < prompt + 3 + 20; ++p) {
      const std::vector<BF16> row = target.Feed(pool, {tokens.data() + p, 1});
      const std::span<const int32_t> seen(tokens.data(), static_cast<size_t>(p + 2));
      ASSERT_TRUE(d->Propose(pool, *a, seen, row, 3, &da).ok());
      ASSERT_TRUE(d->Propose(pool, **b, seen, row, 3, &db).ok());
      EXPECT_EQ(da, db) << p;
    }
  }
  // Bad bytes.
  const std::vector<uint8_t> good = testing::ExpectTruncatedAndCorruptStatesRefused(*d);
  std::vector<uint8_t> bad = good;
  bad[0] = 'X';
  testing::ExpectRestoreRefused(*d, bad, StatusCode::kDataLoss, "DSV4MTPS");
  bad = good;
  bad[8] = 9;  // version
  testing::ExpectRestoreRefused(*d, bad, StatusCode::kFailedPrecondition, "layout version 9");
  bad = good;
  bad[24] ^= 1;  // the window
  testing::ExpectRestoreRefused(*d, bad, StatusCode::kFailedPrecondition, "window");
}

TEST(MtpDrafter, ProposeChecksItsInput) {
  std::unique_ptr<LoadedModel> m = LoadTiny(DraftFamily::kMtp);
  auto d = MakeDrafter(*m, DraftFamily::kMtp).value();
  auto s = d->NewState();
  ThreadPool pool(2);
  Target target(*m->lm);
  const std::vector<int32_t> tokens = RandomTokens(10, 1);
  const std::vector<BF16> rows = target.Feed(pool, {tokens.data(), 9});
  std::vector<int32_t> drafts;
  // Nine committed positions need nine rows.
  Status st = d->Propose(pool, *s, tokens, std::span<const BF16>(rows).first(rows.size() / 9 * 8),
                         1, &drafts);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s->num_tokens(), 0);
  ASSERT_TRUE(d->Propose(pool, *s, tokens, rows, 0, &drafts).ok());  // consumes only
  EXPECT_TRUE(drafts.empty());
  EXPECT_EQ(s->num_tokens(), 9);
  // Nothing new: no drafts. Fewer tokens than consumed: Truncate first.
  ASSERT_TRUE(d->Propose(pool, *s, tokens, {}, 1, &drafts).ok());
  EXPECT_TRUE(drafts.empty());
  st = d->Propose(pool, *s, {tokens.data(), 5}, {}, 1, &drafts);
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  d->Truncate(*s, 0);
  EXPECT_EQ(s->num_tokens(), 0);
}

TEST(MakeDrafter, PerFamily) {
  std::unique_ptr<LoadedModel> april = LoadTiny(DraftFamily::kMtp);
  EXPECT_TRUE(MakeDrafter(*april, DraftFamily::kMtp).ok());
  Status s = MakeDrafter(*april, DraftFamily::kDspark).status();
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), ::testing::HasSubstr("DSpark"));
  std::unique_ptr<LoadedModel> dspark = LoadTiny(DraftFamily::kDspark);
  EXPECT_EQ(MakeDrafter(*dspark, DraftFamily::kMtp).status().code(),
            StatusCode::kFailedPrecondition);
  Result<std::unique_ptr<Drafter>> d = MakeDrafter(*dspark, dspark->drafter);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ((*d)->name(), "dspark");
  EXPECT_EQ((*d)->hidden_rows(), models::HiddenRows::kTargetLayerMeans);
  std::unique_ptr<LoadedModel> none = LoadTiny(DraftFamily::kNone);
  EXPECT_EQ(MakeDrafter(*none, DraftFamily::kNone).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(MakeDrafter(*none, DraftFamily::kMtp).status().code(),
            StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace dsv4::runner
