// Scheduler + KV pages at real dimensions (accounting model): a randomised mix of submit,
// step, cancel and preemption never leaks a page, keeps reference counts balanced, and
// finishes every request (FCFS, no starvation).
#include "sched/scheduler.h"

#include <map>

#include <gtest/gtest.h>

#include "core/rng.h"
#include "checkpoint/presets.h"
#include "runner/accounting_lm.h"

namespace dsv4::sched {
namespace {

int64_t PagesHeldBySequences(const std::map<SeqId, std::unique_ptr<Sequence>>& live) {
  int64_t pages = 0;
  for (const auto& [id, s] : live) {
    for (const auto& c : s->state->Usage().components) pages += c.entries_per_layer;
  }
  return pages;
}

int64_t PagesInPools(const kv::KvManager& kv) {
  int64_t pages = 0;
  for (const auto& c : kv.Stats().components) pages += c.pages_in_use;
  return pages;
}

class SchedulerProperty : public ::testing::TestWithParam<const char*> {};

TEST_P(SchedulerProperty, RandomisedSubmitStepCancelLeavesNoLeaks) {
  const checkpoint::ModelConfig c = checkpoint::PresetConfig(GetParam()).value();
  auto lm = runner::MakeAccountingLm(c);
  const kv::PageLayout layout = lm->page_layout();
  // Room for about three 600-token sequences: forces admission waits and preemptions.
  kv::KvManager kv(layout, 3 * layout.BytesAt(600), /*backing=*/false);
  Scheduler sched({.max_num_batched_tokens = 96, .max_num_seqs = 6}, &kv);
  ThreadPool pool(1);
  Rng rng(2024);
  std::map<SeqId, std::unique_ptr<Sequence>> live;
  std::vector<SeqId> finished_order;
  SeqId next = 1;
  int64_t submitted = 0, cancelled = 0;
  for (int op = 0; op < 4000; ++op) {
    const double r = rng.Uniform();
    if (r < 0.05 && submitted < 120) {
      auto s = std::make_unique<Sequence>();
      s->id = s->arrival = next++;
      const int64_t prompt = 1 + rng.Below(500);
      s->tokens.assign(static_cast<size_t>(prompt), 7);
      s->num_prompt = prompt;
      s->max_tokens = prompt + 1 + static_cast<int64_t>(rng.Below(400));
      s->state = lm->NewSequence(&kv);
      sched.Add(s.get());
      live[s->id] = std::move(s);
      ++submitted;
    } else if (r < 0.055 && !live.empty()) {
      auto it = std::next(live.begin(), static_cast<long>(rng.Below(live.size())));
      sched.Remove(it->second.get());
      live.erase(it);
      ++cancelled;
    } else {
      StepPlan plan = sched.Plan();
      int64_t tokens = 0;
      for (const ScheduledChunk& ch : plan.chunks) {
        tokens += ch.count;
        std::vector<float> logits;
        ASSERT_TRUE(lm->Forward(pool, *ch.seq->state,
                                {ch.seq->tokens.data() + ch.begin, static_cast<size_t>(ch.count)},
                                runner::LogitsMode::kLast, &logits).ok());
      }
      EXPECT_LE(tokens, 96);
      EXPECT_EQ(tokens, plan.num_tokens);
      sched.Commit(plan);
      for (const ScheduledChunk& ch : plan.chunks) {
        EXPECT_EQ(ch.seq->state->num_tokens(), ch.seq->num_computed);
        if (!ch.sample) continue;
        ch.seq->tokens.push_back(0);
        if (ch.seq->num_tokens() >= ch.seq->max_tokens) {
          finished_order.push_back(ch.seq->id);
          sched.Remove(ch.seq);
          live.erase(ch.seq->id);
        }
      }
    }
    // Every page in the pools belongs to exactly one live sequence; budget never exceeded.
    ASSERT_EQ(PagesInPools(kv), PagesHeldBySequences(live)) << "op " << op;
    ASSERT_LE(kv.Stats().used_bytes, kv.budget_bytes());
  }
  // Drain: everything left finishes.
  for (int step = 0; step < 100000 && !live.empty(); ++step) {
    StepPlan plan = sched.Plan();
    ASSERT_FALSE(plan.chunks.empty()) << "stuck with " << live.size() << " sequences";
    for (const ScheduledChunk& ch : plan.chunks) {
      ASSERT_TRUE(lm->Forward(pool, *ch.seq->state,
                              {ch.seq->tokens.data() + ch.begin, static_cast<size_t>(ch.count)},
                              runner::LogitsMode::kNone, nullptr).ok());
    }
    sched.Commit(plan);
    for (const ScheduledChunk& ch : plan.chunks) {
      if (!ch.sample) continue;
      ch.seq->tokens.push_back(0);
      if (ch.seq->num_tokens() >= ch.seq->max_tokens) {
        sched.Remove(ch.seq);
        live.erase(ch.seq->id);
      }
    }
  }
  EXPECT_TRUE(live.empty());
  EXPECT_EQ(PagesInPools(kv), 0);
  EXPECT_EQ(kv.Stats().used_bytes, 0);
  if (c.arch == checkpoint::Arch::kV32) {  // all of its KV grows with tokens: the budget bites
    EXPECT_GT(sched.num_preemptions(), 0);
  }
  EXPECT_GT(cancelled, 0);
  EXPECT_GT(static_cast<int64_t>(finished_order.size()), 20);
  std::printf("%s: %lld submitted, %zu finished in the random phase, %lld cancelled, %lld "
              "preemptions\n", GetParam(), static_cast<long long>(submitted), finished_order.size(),
              static_cast<long long>(cancelled), static_cast<long long>(sched.num_preemptions()));
}

INSTANTIATE_TEST_SUITE_P(Presets, SchedulerProperty,
                         ::testing::Values("v4-tiny", "v4-flash", "v3.2"));

TEST(Scheduler, AdmitsAtMostWhatTheBudgetHolds) {
  const checkpoint::ModelConfig c = checkpoint::PresetConfig("v4-pro").value();
  auto lm = runner::MakeAccountingLm(c);
  const kv::PageLayout layout = lm->page_layout();
  const int64_t prompt = 1 << 20, per_request = layout.BytesAt(prompt + 1);
  const int64_t budget = 200'000'000'000;  // 200 GB: 37 V4-Pro requests of 1M tokens
  kv::KvManager kv(layout, budget, /*backing=*/false);
  Scheduler sched({.max_num_batched_tokens = int64_t{1} << 40, .max_num_seqs = 1000}, &kv);
  std::vector<std::unique_ptr<Sequence>> seqs;
  for (int i = 0; i < 50; ++i) {
    auto s = std::make_unique<Sequence>();
    s->id = s->arrival = i;
    s->tokens.assign(static_cast<size_t>(prompt), 1);
    s->num_prompt = prompt;
    s->max_tokens = prompt + 1;
    s->state = lm->NewSequence(&kv);
    sched.Add(s.get());
    seqs.push_back(std::move(s));
  }
  StepPlan plan = sched.Plan();
  EXPECT_EQ(static_cast<int64_t>(sched.num_running()), budget / per_request);
  EXPECT_EQ(budget / per_request, 37);
  EXPECT_EQ(sched.num_preemptions(), 0);
}


// Runs steps (every chunk fed, one token appended after each sampled one) until every
// sequence decodes: its next chunk is its one new token.
void StepUntilDecoding(Scheduler& sched, runner::CausalLm& lm, ThreadPool& pool,
                       const std::vector<std::unique_ptr<Sequence>>& seqs) {
  auto decoding = [&] {
    for (const auto& s : seqs) {
      if (s->status != SeqStatus::kRunning || s->remaining() != 1) return false;
    }
    return true;
  };
  while (!decoding()) {
    StepPlan plan = sched.Plan();
    for (const ScheduledChunk& ch : plan.chunks) {
      ASSERT_TRUE(lm.Forward(pool, *ch.seq->state,
                             {ch.seq->tokens.data() + ch.begin, static_cast<size_t>(ch.count)},
                             runner::LogitsMode::kNone, nullptr).ok());
    }
    sched.Commit(plan);
    for (const ScheduledChunk& ch : plan.chunks) {
      if (ch.sample) ch.seq->tokens.push_back(0);
    }
  }
}

// Speculative drafts: scheduled after every decode token, within the token budget, oldest
// first; Commit leaves them to the engine (num_computed advances by the known token only).
TEST(Scheduler, DraftsComeAfterEveryDecodeTokenWithinTheBudget) {
  const checkpoint::ModelConfig c = checkpoint::PresetConfig("v4-tiny").value();
  auto lm = runner::MakeAccountingLm(c);
  kv::KvManager kv(lm->page_layout(), int64_t{1} << 30, /*backing=*/false);
  Scheduler sched({.max_num_batched_tokens = 8, .max_num_seqs = 8}, &kv);
  ThreadPool pool(1);
  std::vector<std::unique_ptr<Sequence>> seqs;
  for (int i = 0; i < 3; ++i) {
    auto s = std::make_unique<Sequence>();
    s->id = s->arrival = i;
    s->tokens.assign(2, 5);
    s->num_prompt = 2;
    s->max_tokens = 100;
    s->state = lm->NewSequence(&kv);
    sched.Add(s.get());
    seqs.push_back(std::move(s));
  }
  StepUntilDecoding(sched, *lm, pool, seqs);
  for (auto& s : seqs) s->num_draft = 3;
  StepPlan plan = sched.Plan();
  ASSERT_EQ(plan.chunks.size(), 3u);
  // 8 tokens: the three decode tokens, then 3 + 2 + 0 drafts.
  EXPECT_EQ(plan.num_tokens, 8);
  const std::vector<int64_t> want = {3, 2, 0};
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(plan.chunks[i].count, 1);
    EXPECT_EQ(plan.chunks[i].num_draft, want[i]);
    EXPECT_TRUE(plan.chunks[i].sample);
  }
  // Their pages are reserved: the model may feed them.
  EXPECT_TRUE(lm->Forward(pool, *seqs[0]->state, std::vector<int32_t>(4, 1),
                          runner::LogitsMode::kNone, nullptr).ok());
  const int64_t before = seqs[1]->num_computed;
  sched.Commit(plan);
  EXPECT_EQ(seqs[1]->num_computed, before + 1);
}

// Drafts use free pages only: when theirs do not fit, the step verifies none of them rather
// than preempting a sequence or evicting a cached prefix.
TEST(Scheduler, DraftsThatDoNotFitAreDroppedNotPreempting) {
  const checkpoint::ModelConfig c = checkpoint::PresetConfig("v3.2").value();
  auto lm = runner::MakeAccountingLm(c);
  const kv::PageLayout layout = lm->page_layout();
  // A length whose next token still fits its pages but whose drafts need another page.
  int64_t n = 2;
  while (layout.BytesAt(n + 1) == layout.BytesAt(n + 4)) ++n;
  kv::KvManager kv(layout, layout.BytesAt(n + 1), /*backing=*/false);
  int reclaims = 0;
  Scheduler sched({.max_num_batched_tokens = 1 << 20, .max_num_seqs = 8}, &kv, [&] {
    ++reclaims;
    return false;
  });
  ThreadPool pool(1);
  std::vector<std::unique_ptr<Sequence>> seqs;
  auto s = std::make_unique<Sequence>();
  s->id = s->arrival = 1;
  s->tokens.assign(static_cast<size_t>(n), 5);
  s->num_prompt = n;
  s->max_tokens = n + 10;
  s->state = lm->NewSequence(&kv);
  sched.Add(s.get());
  seqs.push_back(std::move(s));
  StepUntilDecoding(sched, *lm, pool, seqs);
  const int reclaims_before = reclaims;
  seqs[0]->num_draft = 3;
  StepPlan plan = sched.Plan();
  ASSERT_EQ(plan.chunks.size(), 1u);
  EXPECT_EQ(plan.chunks[0].count, 1);
  EXPECT_EQ(plan.chunks[0].num_draft, 0);
  EXPECT_EQ(plan.num_tokens, 1);
  EXPECT_TRUE(plan.preempted.empty());
  EXPECT_EQ(sched.num_preemptions(), 0);
  EXPECT_EQ(reclaims, reclaims_before);
  EXPECT_EQ(kv.Stats().used_bytes, layout.BytesAt(n + 1));
}

}  // namespace
}  // namespace dsv4::sched
