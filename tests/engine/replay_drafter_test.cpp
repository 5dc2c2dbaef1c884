// runner::ReplayDrafter (the free drafter of `dsv4 bench spec`): its proposals follow the
// reference at the seeded coin's positions, and through the engine on the tiny model alpha 0
// / 1 give zero / full acceptance with outputs bit-identical to a run without speculation.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "core/thread_pool.h"
#include "dsv4/engine.h"
#include "engine_fixtures.h"
#include "runner/loaded_model.h"
#include "runner/replay_drafter.h"

namespace dsv4 {
namespace {

using engine_test::Collect;

TEST(ReplayDrafter, ProposesTheReferenceWhereTheCoinSaysRight) {
  const std::vector<int32_t> ref = {5, 6, 7, 8, 9, 10, 11, 12};
  ThreadPool pool(1);
  for (double alpha : {0.0, 0.5, 1.0}) {
    runner::ReplayDrafter d({ref}, alpha, 3, 4, 16);
    EXPECT_FALSE(d.needs_hidden());
    auto st = d.NewState();
    std::vector<int32_t> drafts;
    const std::vector<int32_t> tokens(ref.begin(), ref.begin() + 3);
    ASSERT_TRUE(d.Propose(pool, *st, tokens, {}, 4, &drafts).ok());
    EXPECT_EQ(st->num_tokens(), 2);
    ASSERT_EQ(drafts.size(), 4u);
    for (int64_t p = 3; p < 7; ++p) {
      const int32_t want = ref[static_cast<size_t>(p)];
      EXPECT_EQ(drafts[static_cast<size_t>(p - 3)], d.Right(p) ? want : (want + 1) % 16);
      if (alpha == 0.0) EXPECT_FALSE(d.Right(p));
      if (alpha == 1.0) EXPECT_TRUE(d.Right(p));
    }
    // Past the reference's end: fewer drafts; off the reference: none.
    ASSERT_TRUE(d.Propose(pool, *st, std::vector<int32_t>(ref.begin(), ref.end() - 1), {}, 4,
                          &drafts).ok());
    EXPECT_EQ(drafts.size(), 1u);
    ASSERT_TRUE(d.Propose(pool, *st, std::vector<int32_t>{5, 7}, {}, 4, &drafts).ok());
    EXPECT_TRUE(drafts.empty());
    d.Truncate(*st, 1);
    EXPECT_EQ(st->num_tokens(), 1);
  }
}

TEST(ReplayDrafter, ZeroAndFullAcceptanceThroughTheEngineKeepOutputs) {
  std::vector<GenerationRequest> reqs(2);
  for (int t = 0; t < 40; ++t) {
    reqs[0].prompt.push_back((t * 7) % 512);
    reqs[1].prompt.push_back((t * 13 + 1) % 512);
  }
  reqs[0].stop = reqs[1].stop = {.max_new_tokens = 12, .ignore_eos = true};
  EngineOptions plain;
  plain.speculative = SpeculativeMode::kOff;
  plain.prefix_caching = false;
  auto run = [&](const EngineOptions& o, EngineStats* st) {
    auto e = Engine::Create(engine_test::Tiny(), o).value();
    std::vector<std::shared_ptr<RequestStream>> streams;
    for (const GenerationRequest& r : reqs) streams.push_back(e->Submit(r).value());
    std::vector<std::vector<int32_t>> out;
    for (auto& s : streams) out.push_back(Collect(*s));
    *st = e->Stats();
    return out;
  };
  EngineStats st;
  const auto want = run(plain, &st);
  std::vector<std::vector<int32_t>> refs;
  for (size_t i = 0; i < reqs.size(); ++i) {
    refs.push_back(reqs[i].prompt);
    refs.back().insert(refs.back().end(), want[i].begin(), want[i].end());
  }
  for (double alpha : {0.0, 0.5, 1.0}) {
    SCOPED_TRACE(alpha);
    EngineOptions o = plain;
    o.speculative = SpeculativeMode::kAuto;
    o.draft_tokens = 3;
    o.drafter = [refs, alpha](const runner::LoadedModel& m)
        -> Result<std::unique_ptr<runner::Drafter>> {
      return std::unique_ptr<runner::Drafter>(
          std::make_unique<runner::ReplayDrafter>(refs, alpha, 1, 3, m.lm->config().vocab_size));
    };
    EXPECT_EQ(run(o, &st), want);
    ASSERT_GT(st.spec_verifications, 0);
    if (alpha == 0.0) EXPECT_EQ(st.spec_accepted_tokens, 0);
    if (alpha == 1.0) EXPECT_EQ(st.spec_accepted_tokens, st.spec_draft_tokens);
    if (alpha == 0.5) {
      EXPECT_GT(st.spec_accepted_tokens, 0);
      EXPECT_LT(st.spec_accepted_tokens, st.spec_draft_tokens);
    }
  }
}

}  // namespace
}  // namespace dsv4
