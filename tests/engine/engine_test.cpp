// The engine end to end on the built-in tiny model: greedy outputs do not depend on batch
// size, chunking, preemption or cancellation of others; bad requests get clear errors; every
// page is returned.
#include "dsv4/engine.h"
#include "engine_fixtures.h"
#include "oracle_drafter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/rng.h"
#include "kv/page_layout.h"
#include "checkpoint/config.h"
#include "checkpoint/presets.h"
#include "testing/weight_generator.h"
#include "runner/accounting_lm.h"
#include "runner/loaded_model.h"
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <limits>
#include <thread>

namespace dsv4 {
namespace {

using engine_test::Collect;
using engine_test::KvBytesAfterClearingCache;
using engine_test::Tiny;
using engine_test::TinyV32;

using ::testing::HasSubstr;

using engine_test::Served;
using engine_test::V32Tiny;
using engine_test::V4Tiny;

std::vector<GenerationRequest> Requests() {
  std::vector<GenerationRequest> out;
  Rng rng(5);
  for (int i = 0; i < 6; ++i) {
    GenerationRequest r;
    const int64_t len = 5 + static_cast<int64_t>(rng.Below(150));
    for (int64_t t = 0; t < len; ++t) r.prompt.push_back(static_cast<int32_t>(rng.Below(512)));
    r.stop.max_new_tokens = 6 + i;
    r.stop.ignore_eos = true;
    if (i % 2) {  // some sampled requests too: seeded per request, so still reproducible
      r.sampling.temperature = 0.8f;
      r.sampling.top_p = 0.9f;
      r.sampling.seed = 100 + i;
    }
    out.push_back(r);
  }
  return out;
}

std::vector<std::vector<int32_t>> RunAll(const EngineOptions& o, EngineStats* stats) {
  auto engine = Engine::Create(Tiny(), o).value();
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (const GenerationRequest& r : Requests()) streams.push_back(engine->Submit(r).value());
  std::vector<std::vector<int32_t>> out;
  for (auto& s : streams) {
    std::vector<int32_t> tokens;
    TokenEvent ev;
    while (s->Next(&ev)) {
      if (!ev.finished) tokens.push_back(ev.token);
      if (ev.finished) EXPECT_EQ(ev.reason, FinishReason::kLength);
    }
    out.push_back(tokens);
  }
  *stats = engine->Stats();
  stats->kv.used_bytes = KvBytesAfterClearingCache(*engine);
  return out;
}

TEST(Engine, OutputsIndependentOfBatchingChunkingAndPreemption) {
  EngineStats sequential_stats, batched_stats, chunked_stats, tight_stats;
  EngineOptions o;
  o.max_num_seqs = 1;
  o.max_num_batched_tokens = 4096;
  const auto sequential = RunAll(o, &sequential_stats);
  o.max_num_seqs = 8;
  const auto batched = RunAll(o, &batched_stats);
  o.max_num_batched_tokens = 7;
  const auto chunked = RunAll(o, &chunked_stats);
  // A budget for about two sequences at a time: admission waits and preemptions.
  o.max_num_batched_tokens = 64;
  o.kv_budget_bytes = 720 * 1024;
  const auto tight = RunAll(o, &tight_stats);
  // Speculative decoding (an oracle right on 2 positions in 3) under the same pressure.
  EngineStats spec_stats;
  const auto refs = engine_test::References(Requests(), sequential);
  const auto spec = RunAll(
      engine_test::WithOracle(o, refs, [](int64_t p) { return p % 3 != 1; }, 3), &spec_stats);
  for (size_t i = 0; i < sequential.size(); ++i) {
    EXPECT_EQ(sequential[i].size(), 6 + i);
    EXPECT_EQ(batched[i], sequential[i]) << i;
    EXPECT_EQ(chunked[i], sequential[i]) << i;
    EXPECT_EQ(tight[i], sequential[i]) << i;
    EXPECT_EQ(spec[i], sequential[i]) << i;
  }
  EXPECT_GT(spec_stats.spec_accepted_tokens, 0);
  EXPECT_EQ(spec_stats.finished, 6);
  EXPECT_EQ(spec_stats.kv.used_bytes, 0);
  EXPECT_EQ(sequential_stats.max_running, 1);
  EXPECT_GT(batched_stats.max_running, 1);
  EXPECT_LT(tight_stats.max_running, batched_stats.max_running);
  for (const EngineStats* s : {&sequential_stats, &batched_stats, &chunked_stats, &tight_stats}) {
    EXPECT_EQ(s->finished, 6);
    EXPECT_EQ(s->kv.used_bytes, 0);  // every page returned
  }
}

// Two requests admitted side by side whose growth cannot both fit: the newer one is
// preempted, recomputed later, and still produces exactly its solo output.
void ExpectPreemptionGivesIdenticalOutput(const Served& m) {
  SCOPED_TRACE(m.name);
  const ModelFactory& model = m.factory;
  const kv::PageLayout layout = m.layout();
  GenerationRequest a, b;
  for (int t = 0; t < 250; ++t) a.prompt.push_back((t * 7) % 512), b.prompt.push_back((t * 11) % 512);
  a.stop = b.stop = {.max_new_tokens = 120, .ignore_eos = true};
  auto solo = [&](const GenerationRequest& r) {
    auto e = Engine::Create(model, EngineOptions{}).value();
    auto s = e->Submit(r).value();
    std::vector<int32_t> out;
    TokenEvent ev;
    while (s->Next(&ev)) {
      if (!ev.finished) out.push_back(ev.token);
    }
    return out;
  };
  const auto want_a = solo(a), want_b = solo(b);
  EngineOptions o;
  // Both prompts fit at once; both grown to 370 tokens do not.
  o.kv_budget_bytes = 2 * layout.BytesAt(251) + 1;
  ASSERT_LT(o.kv_budget_bytes, layout.BytesAt(251) + layout.BytesAt(370));
  auto e = Engine::Create(model, o).value();
  auto sa = e->Submit(a).value(), sb = e->Submit(b).value();
  std::vector<int32_t> got_a, got_b;
  TokenEvent ev;
  while (sa->Next(&ev)) {
    if (!ev.finished) got_a.push_back(ev.token);
  }
  while (sb->Next(&ev)) {
    if (!ev.finished) got_b.push_back(ev.token);
  }
  EXPECT_EQ(got_a, want_a);
  EXPECT_EQ(got_b, want_b);
  const EngineStats s = e->Stats();
  EXPECT_GT(s.preemptions, 0);
  EXPECT_EQ(s.max_running, 2);
  EXPECT_LE(s.kv.used_bytes, o.kv_budget_bytes);
  EXPECT_EQ(KvBytesAfterClearingCache(*e), 0);
}

TEST(Engine, PreemptionByRecomputeGivesIdenticalOutput) {
  ExpectPreemptionGivesIdenticalOutput(V4Tiny());
}
// V3.2 under a tight budget: preempted, recomputed, bit-identical (its MLA records and
// indexer keys are pages of the same budget).
TEST(EngineV32, PreemptionByRecomputeGivesIdenticalOutput) {
  ExpectPreemptionGivesIdenticalOutput(V32Tiny());
}

TEST(Engine, CancelFreesPagesAndOthersContinue) {
  EngineOptions o;
  auto engine = Engine::Create(Tiny(), o).value();
  GenerationRequest long_req;
  long_req.prompt.assign(300, 3);
  long_req.stop.max_new_tokens = 2000;
  long_req.stop.ignore_eos = true;
  auto victim = engine->Submit(long_req).value();
  GenerationRequest short_req;
  short_req.prompt = {1, 2, 3};
  short_req.stop.max_new_tokens = 4;
  short_req.stop.ignore_eos = true;
  auto other = engine->Submit(short_req).value();
  TokenEvent ev;
  ASSERT_TRUE(victim->Next(&ev));  // it is running
  engine->Cancel(victim->id());
  FinishReason reason = FinishReason::kNone;
  while (victim->Next(&ev)) reason = ev.reason;
  EXPECT_EQ(reason, FinishReason::kCancelled);
  int got = 0;
  while (other->Next(&ev)) got += !ev.finished;
  EXPECT_EQ(got, 4);
  EXPECT_EQ(KvBytesAfterClearingCache(*engine), 0);
}

TEST(Engine, BadRequestsGetClearErrors) {
  EngineOptions o;
  o.kv_budget_bytes = 1 << 20;
  auto engine = Engine::Create(Tiny(), o).value();
  GenerationRequest r;
  EXPECT_THAT(engine->Submit(r).status().message(), HasSubstr("prompt is empty"));
  r.prompt = {1, 600};
  EXPECT_THAT(engine->Submit(r).status().message(),
              HasSubstr("token 600 at position 1 is outside the vocabulary [0, 512)"));
  r.prompt = {1, 2};
  r.stop.max_new_tokens = 0;
  EXPECT_THAT(engine->Submit(r).status().message(), HasSubstr("max_new_tokens"));
  r.stop.max_new_tokens = 70000;
  EXPECT_THAT(engine->Submit(r).status().message(), HasSubstr("exceeds the context"));
  r.stop.max_new_tokens = 20000;  // fits the context but never the 1 MiB KV budget
  Status s = engine->Submit(r).status();
  EXPECT_EQ(s.code(), StatusCode::kOutOfRange);  // not ResourceExhausted: retrying never helps
  EXPECT_THAT(s.message(), HasSubstr("whole budget"));
  r.stop.max_new_tokens = 3;
  r.sampling.top_p = 0;
  EXPECT_THAT(engine->Submit(r).status().message(), HasSubstr("top_p"));
  r.sampling.top_p = 1;
  EXPECT_TRUE(engine->Submit(r).ok());  // and the engine still serves
  o.kv_budget_bytes = 0;
  EXPECT_FALSE(Engine::Create(Tiny(), o).ok());
  EXPECT_EQ(Engine::Create(ModelFactory(), EngineOptions{}).status().code(),
            StatusCode::kInvalidArgument);
}

// Check says which limit a request can never meet (callers map it: the server to an OpenAI
// error naming the field), with the same Status Submit refuses it with; a full queue is the
// only refusal that is not permanent.
TEST(Engine, CheckNamesTheLimitARequestCanNeverMeet) {
  EngineOptions o;
  o.kv_budget_bytes = 1 << 20;
  o.max_queued_requests = 1;
  auto engine = Engine::Create(Tiny(), o).value();
  const int64_t context = engine->config().max_position_embeddings;
  ASSERT_EQ(context, 65536);
  auto check = [&](int64_t prompt_len, int64_t max_new) {
    GenerationRequest r;
    r.prompt.assign(static_cast<size_t>(prompt_len), 5);
    r.stop.max_new_tokens = max_new;
    const RequestCheck c = engine->Check(r);
    if (!c.ok()) {  // Submit refuses exactly so
      const Status submitted = engine->Submit(r).status();
      EXPECT_EQ(submitted.code(), c.status.code());
      EXPECT_EQ(submitted.message(), c.status.message());
    }
    return c;
  };
  RequestCheck c = check(context, 1);
  EXPECT_EQ(c.problem, RequestProblem::kPromptTooLong);
  EXPECT_EQ(c.status.code(), StatusCode::kOutOfRange);
  EXPECT_THAT(c.status.message(), HasSubstr("the prompt is 65536 tokens; the model's context is "
                                            "65536 tokens"));
  c = check(10, context - 9);
  EXPECT_EQ(c.problem, RequestProblem::kContextExceeded);
  EXPECT_THAT(c.status.message(),
              HasSubstr("prompt of 10 tokens + 65527 new tokens exceeds the context of 65536"));
  c = check(10, std::numeric_limits<int64_t>::max());  // no overflow on the way
  EXPECT_EQ(c.problem, RequestProblem::kContextExceeded);
  c = check(10, 20000);
  EXPECT_EQ(c.problem, RequestProblem::kKvBudgetExceeded);
  EXPECT_EQ(c.status.code(), StatusCode::kOutOfRange);
  EXPECT_THAT(c.status.message(),
              HasSubstr(std::to_string(engine->KvBytesAt(20010)) +
                        " bytes of KV cache at 20010 tokens but the whole budget is 1048576"));
  c = check(0, 1);
  EXPECT_EQ(c.problem, RequestProblem::kMalformed);
  EXPECT_EQ(c.status.code(), StatusCode::kInvalidArgument);
  c = check(10, 4);
  EXPECT_TRUE(c.ok());
  EXPECT_TRUE(c.status.ok());
  // Queue of one: a second request waits behind a paused engine -> ResourceExhausted.
  engine->SetPaused(true);
  GenerationRequest r;
  r.prompt = {1, 2, 3};
  r.stop.max_new_tokens = 2;
  std::shared_ptr<RequestStream> queued = engine->Submit(r).value();
  EXPECT_EQ(engine->Submit(r).status().code(), StatusCode::kResourceExhausted);
  // A cancellation takes effect while paused: the stream ends and the slot is free again.
  engine->Cancel(queued->id());
  TokenEvent ev;
  ASSERT_TRUE(queued->Next(&ev));
  EXPECT_TRUE(ev.finished);
  EXPECT_EQ(ev.reason, FinishReason::kCancelled);
  std::shared_ptr<RequestStream> next = engine->Submit(r).value();
  engine->SetPaused(false);
  EXPECT_EQ(Collect(*next).size(), 2u);
}

// The engine owns the served model's name, config and tokenizer (callers need not open the
// checkpoint again), and reports its KV budget before the first step.
TEST(Engine, ExposesTheModelsConfigTokenizerAndBudget) {
  EngineOptions o;
  o.kv_budget_bytes = 3 << 20;
  o.threads = 1;
  auto engine = Engine::Create(Tiny(), o).value();
  EXPECT_EQ(engine->model_name(), "dsv4-tiny");
  EXPECT_EQ(engine->config().vocab_size, 512);
  EXPECT_EQ(engine->vocab_size(), 512);
  EXPECT_EQ(engine->eos_token_id(), engine->config().eos_token_id);
  EXPECT_EQ(engine->num_threads(), 1);
  EXPECT_EQ(engine->Stats().kv.budget_bytes, 3 << 20);
  const kv::PageLayout layout(checkpoint::TinyV4Config(), kv::DefaultKvFormats(checkpoint::Arch::kV4));
  EXPECT_EQ(engine->KvBytesAt(1000), layout.BytesAt(1000));
  Result<const tokenizer::Tokenizer*> tok = engine->tokenizer();
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  Result<std::vector<int32_t>> ids = (*tok)->Encode("Hello", {.add_bos = false});
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ((*tok)->DecodeText(*ids).value(), "Hello");

  // A model without tokenizer.json serves token ids; tokenizer() says what is missing.
  ModelFactory no_tokenizer = []() -> Result<std::unique_ptr<runner::LoadedModel>> {
    DSV4_ASSIGN_OR_RETURN(checkpoint::Checkpoint ck, fixtures::BuiltinDefaultModel());
    ck.tokenizer_json.clear();
    return runner::LoadCheckpoint(std::move(ck), "/models/bare");
  };
  auto bare = Engine::Create(no_tokenizer, o).value();
  EXPECT_EQ(bare->tokenizer().status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(bare->tokenizer().status().message(), "tokenizer.json not found in /models/bare");
  GenerationRequest r;
  r.prompt = {1, 2, 3};
  r.stop = {.max_new_tokens = 2, .ignore_eos = true, .stop_token_ids = {}};
  EXPECT_EQ(Collect(*bare->Submit(r).value()).size(), 2u);
}

// The KV-accounting stand-in is injected like any model: real dimensions, context extended
// for capacity studies, no tokenizer, every token 0.
TEST(Engine, AccountingModelComesThroughTheFactory) {
  EngineOptions o;
  o.kv_budget_bytes = int64_t{40} << 30;
  auto engine = Engine::Create([] { return runner::AccountingModel("v4-flash"); }, o).value();
  EXPECT_EQ(engine->model_name(), "v4-flash (KV accounting only)");
  EXPECT_EQ(engine->config().max_position_embeddings, int64_t{1} << 40);
  EXPECT_FALSE(engine->tokenizer().ok());
  GenerationRequest r;
  r.prompt.assign(100000, 1);
  r.stop = {.max_new_tokens = 3, .ignore_eos = true, .stop_token_ids = {}};
  EXPECT_EQ(Collect(*engine->Submit(r).value()), std::vector<int32_t>({0, 0, 0}));
  EXPECT_THAT(Engine::Create([] { return runner::AccountingModel("v5"); }, o).status().message(),
              HasSubstr("unknown model preset 'v5'"));
}

// Token-level stops belong to the engine: EOS and stop ids end a request unless ignore_eos,
// max_new_tokens ends it by length.
TEST(Engine, StopConditionsEndRequestsByTokenOrLength) {
  auto engine = Engine::Create(Tiny(), EngineOptions{}).value();
  GenerationRequest r;
  for (int t = 0; t < 20; ++t) r.prompt.push_back((t * 31 + 3) % 512);
  r.stop = {.max_new_tokens = 8, .ignore_eos = true, .stop_token_ids = {}};
  const std::vector<int32_t> free_run = Collect(*engine->Submit(r).value());
  ASSERT_EQ(free_run.size(), 8u);
  // The 4th token as a stop id: the request ends with it, by kStop.
  r.stop = {.max_new_tokens = 8, .ignore_eos = false, .stop_token_ids = {free_run[3]}};
  auto stream = engine->Submit(r).value();
  std::vector<int32_t> got;
  TokenEvent ev;
  FinishReason reason = FinishReason::kNone;
  while (stream->Next(&ev)) {
    if (ev.finished) reason = ev.reason; else got.push_back(ev.token);
  }
  const auto first = std::find(free_run.begin(), free_run.end(), free_run[3]);
  EXPECT_EQ(got, std::vector<int32_t>(free_run.begin(), first + 1));
  EXPECT_EQ(reason, FinishReason::kStop);
  // ignore_eos ignores stop ids too.
  r.stop.ignore_eos = true;
  EXPECT_EQ(Collect(*engine->Submit(r).value()), free_run);
}

}  // namespace
}  // namespace dsv4

namespace dsv4 {
namespace {

// Prefix caching: a request whose prompt starts with a cached prefix reuses it (at any
// position the donor passed a snapshot point) and still produces exactly the tokens it
// produces with caching off; cache entries give way to running requests under pressure.
void ExpectPrefixHitsBitIdentical(const Served& m) {
  SCOPED_TRACE(m.name);
  std::vector<int32_t> shared;
  for (int t = 0; t < 300; ++t) shared.push_back((t * 37 + 5) % 512);
  auto make = [&](int64_t keep, int tail_seed, float temperature) {
    GenerationRequest r;
    r.prompt.assign(shared.begin(), shared.begin() + keep);
    for (int t = 0; t < 40; ++t) r.prompt.push_back((t * 13 + tail_seed) % 512);
    r.stop = {.max_new_tokens = 12, .ignore_eos = true};
    r.sampling.temperature = temperature;
    r.sampling.seed = 7;
    return r;
  };
  const std::vector<GenerationRequest> reqs = {make(300, 1, 0), make(260, 2, 0),
                                               make(300, 3, 0.9f), make(131, 4, 0)};
  EngineOptions off;
  off.prefix_caching = false;
  std::vector<std::vector<int32_t>> want;
  {
    auto e = Engine::Create(m.factory, off).value();
    for (const auto& r : reqs) want.push_back(Collect(*e->Submit(r).value()));
  }
  EngineOptions on;
  on.prefix_snapshot_interval = 128;
  auto e = Engine::Create(m.factory, on).value();
  for (size_t i = 0; i < reqs.size(); ++i) {
    EXPECT_EQ(Collect(*e->Submit(reqs[i]).value()), want[i]) << i;
  }
  const EngineStats s = e->Stats();
  // req 0 snapshots at 128 and 256 (its 340-token prompt's last multiple of 128 is 256);
  // req 1 shares 260 tokens -> hit at 256; req 2 shares 300 -> 256; req 3 shares 131 -> 128.
  EXPECT_EQ(s.prefix_hits, 3);
  EXPECT_EQ(s.prefix_hit_tokens, 256 + 256 + 128);
  EXPECT_GE(s.prefix_cache_entries, 2);
  EXPECT_EQ(KvBytesAfterClearingCache(*e), 0);  // shared pages balanced
}

TEST(Engine, PrefixHitsAreBitIdenticalToRecomputing) { ExpectPrefixHitsBitIdentical(V4Tiny()); }
// V3.2: a hit restores page references only, and the output equals a cold run's.
TEST(EngineV32, PrefixHitsAreBitIdenticalToRecomputing) {
  ExpectPrefixHitsBitIdentical(V32Tiny());
}

TEST(Engine, PrefixCacheGivesWayUnderMemoryPressure) {
  const kv::PageLayout layout(checkpoint::TinyV4Config(), kv::DefaultKvFormats(checkpoint::Arch::kV4));
  EngineOptions o;
  o.prefix_snapshot_interval = 128;
  o.kv_budget_bytes = 2 * layout.BytesAt(450);
  EngineOptions off = o;
  off.prefix_caching = false;
  std::vector<GenerationRequest> reqs;
  for (int i = 0; i < 4; ++i) {
    GenerationRequest r;
    for (int t = 0; t < 400; ++t) r.prompt.push_back((t * (3 + i) + i) % 512);
    r.stop = {.max_new_tokens = 5, .ignore_eos = true};
    reqs.push_back(r);
  }
  std::vector<std::vector<int32_t>> want, got;
  {
    auto e = Engine::Create(Tiny(), off).value();
    for (const auto& r : reqs) want.push_back(Collect(*e->Submit(r).value()));
  }
  auto e = Engine::Create(Tiny(), o).value();
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (const auto& r : reqs) streams.push_back(e->Submit(r).value());
  for (auto& s : streams) got.push_back(Collect(*s));
  EXPECT_EQ(got, want);
  EXPECT_LE(e->Stats().kv.used_bytes, o.kv_budget_bytes);
  EXPECT_EQ(KvBytesAfterClearingCache(*e), 0);
}

}  // namespace
}  // namespace dsv4

namespace dsv4 {
namespace {

// A random mix of submissions sharing prefixes, cancellations, chunking and a bounded budget:
// every request that completes produces exactly
// its solo output, and once the cache is cleared every page is back (no leak, balanced
// reference counts on shared pages).
// Who drafts in the mix: nobody, an oracle right on a random pattern of positions, or the
// checkpoint's own drafter (the tiny V4's April MTP layer).
enum class Drafts { kNone, kOracle, kCheckpoint };

void RandomisedMixLeaksNothing(const Served& m, Drafts drafts) {
  SCOPED_TRACE(m.name);
  SCOPED_TRACE(static_cast<int>(drafts));
  const bool speculative = drafts != Drafts::kNone;
  Rng rng(77);
  std::vector<int32_t> base;
  for (int t = 0; t < 400; ++t) base.push_back(static_cast<int32_t>(rng.Below(512)));
  std::vector<GenerationRequest> reqs;
  for (int i = 0; i < 8; ++i) {
    GenerationRequest r;
    const int64_t keep = 100 + static_cast<int64_t>(rng.Below(200));
    r.prompt.assign(base.begin(), base.begin() + keep);
    for (int t = 0; t < 1 + static_cast<int>(rng.Below(30)); ++t) {
      r.prompt.push_back(static_cast<int32_t>(rng.Below(512)));
    }
    r.stop = {.max_new_tokens = 3 + static_cast<int64_t>(rng.Below(10)), .ignore_eos = true};
    if (speculative) r.stop.max_new_tokens += 20;
    reqs.push_back(r);
  }
  EngineOptions solo_opts;
  solo_opts.prefix_caching = false;
  solo_opts.speculative = SpeculativeMode::kOff;
  std::vector<std::vector<int32_t>> want;
  {
    auto e = Engine::Create(m.factory, solo_opts).value();
    for (const auto& r : reqs) want.push_back(Collect(*e->Submit(r).value()));
  }
  const kv::PageLayout layout = m.layout();
  EngineOptions o;
  o.prefix_snapshot_interval = 128;
  o.kv_budget_bytes = 4 * layout.BytesAt(420);
  o.max_num_batched_tokens = 96;
  o.max_num_seqs = 3;
  o.speculative = drafts == Drafts::kCheckpoint ? SpeculativeMode::kMtp : SpeculativeMode::kOff;
  if (drafts == Drafts::kOracle) {
    const uint64_t salt = rng.NextU64();
    o = engine_test::WithOracle(o, engine_test::References(reqs, want), [salt](int64_t p) {
      return (HashString(std::to_string(p)) ^ salt) % 4 != 0;
    }, 1 + static_cast<int64_t>(rng.Below(4)));
  }
  auto e = Engine::Create(m.factory, o).value();
  std::vector<std::shared_ptr<RequestStream>> streams;
  std::vector<bool> cancelled(reqs.size(), false);
  for (size_t i = 0; i < reqs.size(); ++i) {
    streams.push_back(e->Submit(reqs[i]).value());
    if (rng.Below(4) == 0) {
      e->Cancel(streams.back()->id());
      cancelled[i] = true;
    }
  }
  int completed = 0;
  for (size_t i = 0; i < reqs.size(); ++i) {
    std::vector<int32_t> got;
    TokenEvent ev;
    FinishReason reason = FinishReason::kNone;
    while (streams[i]->Next(&ev)) {
      if (ev.finished) {
        reason = ev.reason;
      } else {
        got.push_back(ev.token);
      }
      const EngineStats st = e->Stats();
      EXPECT_LE(st.kv.used_bytes, o.kv_budget_bytes);  // the budget is never exceeded
    }
    if (reason == FinishReason::kLength) {
      EXPECT_EQ(got, want[i]) << i;
      ++completed;
    } else {
      EXPECT_TRUE(cancelled[i]) << i;
      EXPECT_EQ(reason, FinishReason::kCancelled);
    }
  }
  EXPECT_GE(completed, 4);
  EXPECT_GT(e->Stats().prefix_hits, 0);
  if (drafts == Drafts::kOracle) {
    EXPECT_GT(e->Stats().spec_accepted_tokens, 0);
    EXPECT_LT(e->Stats().spec_accepted_tokens, e->Stats().spec_draft_tokens);
  }
  if (speculative) EXPECT_GT(e->Stats().spec_verifications, 0);
  EXPECT_EQ(KvBytesAfterClearingCache(*e), 0);
}

TEST(Engine, RandomisedMixWithPrefixSharingLeaksNothing) {
  RandomisedMixLeaksNothing(V4Tiny(), Drafts::kNone);
}
TEST(EngineV32, RandomisedMixWithPrefixSharingLeaksNothing) {
  RandomisedMixLeaksNothing(V32Tiny(), Drafts::kNone);
}
// The same mix speculating: every completed request still produces its solo output.
TEST(Engine, RandomisedMixWithSpeculationIsBitIdentical) {
  RandomisedMixLeaksNothing(V4Tiny(), Drafts::kOracle);
  RandomisedMixLeaksNothing(V4Tiny(), Drafts::kCheckpoint);
}
TEST(EngineV32, RandomisedMixWithSpeculationIsBitIdentical) {
  RandomisedMixLeaksNothing(V32Tiny(), Drafts::kOracle);
}

}  // namespace
}  // namespace dsv4
