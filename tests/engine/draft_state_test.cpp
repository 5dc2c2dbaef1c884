// Speculative decoding across cached prefixes and auto mode's switch-off (README
// "Speculative decoding"):
// - the drafter's state is saved with prefix snapshots (prompt stop points, finished turns,
//   the disk tier after a restart) and restored on a hit, so the tiny V4's real MTP drafter
//   proposes after a hit exactly what it proposes after prefilling the same prompt cold, and
//   outputs stay those of decoding without speculation; a version 1 file (no drafter state)
//   still restores the KV, and the request then goes on without drafts;
// - auto mode pauses a request's drafting while it does not pay (the cost model injected, so
//   every decision is counted, never timed): a never-right drafter stops after a bounded
//   number of verifications and probes again with back-off, a mostly-right one keeps
//   drafting; outputs never change.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include "core/rng.h"
#include "dsv4/engine.h"
#include "engine/draft_switch.h"
#include "engine_fixtures.h"
#include "kv/snapshot_file.h"
#include "oracle_drafter.h"
#include "runner/drafter.h"
#include "runner/loaded_model.h"
#include "runner/make_drafter.h"
#include "runner/mtp_drafter.h"

namespace dsv4 {
namespace {

namespace fs = std::filesystem;
using engine_test::Collect;
using engine_test::KvBytesAfterClearingCache;
using engine_test::OracleLog;
using engine_test::References;
using engine_test::WithOracle;

// Every proposal with drafts: the tokens the drafter was given, its drafts, and a checksum of
// the MTP ring rows the state's next position reads (positions [n - W, n)): equal proposals
// then mean equal states, not only equal argmaxes.
struct Proposal {
  size_t tokens = 0;
  std::vector<int32_t> drafts;
  uint64_t window = 0;
  bool operator==(const Proposal&) const = default;
};
using Proposals = std::vector<Proposal>;

// The checkpoint's (MTP) drafter, recording its proposals.
class Recording final : public runner::Drafter {
 public:
  Recording(std::unique_ptr<runner::Drafter> inner, std::shared_ptr<Proposals> log, int64_t window)
      : inner_(std::move(inner)), log_(std::move(log)), window_(window) {}
  std::string_view name() const override { return inner_->name(); }
  int64_t max_draft_tokens() const override { return inner_->max_draft_tokens(); }
  bool needs_hidden() const override { return inner_->needs_hidden(); }
  std::unique_ptr<runner::DraftState> NewState() const override { return inner_->NewState(); }
  Status Propose(ThreadPool& pool, runner::DraftState& state, std::span<const int32_t> tokens,
                 std::span<const BF16> hidden, int64_t k,
                 std::vector<int32_t>* drafts) const override {
    DSV4_RETURN_IF_ERROR(inner_->Propose(pool, state, tokens, hidden, k, drafts));
    if (drafts->empty()) return Status::Ok();
    const auto& ring = static_cast<const runner::MtpDraftState&>(state).ring();
    std::vector<uint8_t> rows;
    for (int64_t p = std::max<int64_t>(0, state.num_tokens() - window_); p < state.num_tokens();
         ++p) {
      rows.insert(rows.end(), ring.WindowRow(0, p), ring.WindowRow(0, p) + ring.entry_bytes());
    }
    log_->push_back({tokens.size(), *drafts, kv::Checksum64(rows)});
    return Status::Ok();
  }
  void Truncate(runner::DraftState& state, int64_t n) const override { inner_->Truncate(state, n); }
  bool saves_state() const override { return inner_->saves_state(); }
  Status SaveState(const runner::DraftState& state, std::vector<uint8_t>* out) const override {
    return inner_->SaveState(state, out);
  }
  Result<std::unique_ptr<runner::DraftState>> RestoreState(
      std::span<const uint8_t> bytes) const override {
    return inner_->RestoreState(bytes);
  }

 private:
  std::unique_ptr<runner::Drafter> inner_;
  std::shared_ptr<Proposals> log_;
  int64_t window_;
};

EngineOptions WithRecordedMtp(EngineOptions o, std::shared_ptr<Proposals> log, int64_t k) {
  o.speculative = SpeculativeMode::kMtp;
  o.draft_tokens = k;
  o.drafter = [log, k](const runner::LoadedModel& m) -> Result<std::unique_ptr<runner::Drafter>> {
    DSV4_ASSIGN_OR_RETURN(std::unique_ptr<runner::Drafter> d,
                          runner::MakeDrafter(m, m.drafter, {.max_draft_tokens = k}));
    return std::unique_ptr<runner::Drafter>(
        std::make_unique<Recording>(std::move(d), log, m.lm->config().sliding_window));
  };
  return o;
}

std::vector<int32_t> RandomTokens(Rng& rng, int64_t n) {
  std::vector<int32_t> t;
  for (int64_t i = 0; i < n; ++i) t.push_back(static_cast<int32_t>(rng.Below(512)));
  return t;
}

GenerationRequest Request(std::vector<int32_t> prompt, int64_t max_new) {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.stop = {.max_new_tokens = max_new, .ignore_eos = true};
  return r;
}

EngineOptions Caching() {
  EngineOptions o;
  o.prefix_snapshot_interval = 128;
  return o;
}

// `r` alone on a fresh engine without prefix caching: its output and the drafter's proposals.
std::vector<int32_t> Cold(const GenerationRequest& r, int64_t k, Proposals* proposals) {
  auto log = std::make_shared<Proposals>();
  EngineOptions o;
  o.prefix_caching = false;
  auto e = Engine::Create(engine_test::Tiny(), WithRecordedMtp(o, log, k)).value();
  std::vector<int32_t> out = Collect(*e->Submit(r).value());
  *proposals = *log;
  return out;
}

std::vector<int32_t> Plain(const GenerationRequest& r) {
  EngineOptions o;
  o.prefix_caching = false;
  o.speculative = SpeculativeMode::kOff;
  return Collect(*Engine::Create(engine_test::Tiny(), o).value()->Submit(r).value());
}

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("dsv4_draft_state_test_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string str() const { return path_.string(); }
  std::vector<fs::path> Files() const {
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(path_)) {
      if (e.path().extension() == kv::kSnapshotFileSuffix) out.push_back(e.path());
    }
    return out;
  }

 private:
  fs::path path_;
};

// Rewrites a snapshot file as the previous build wrote it: format version 1, no draft section.
void MakeVersionOne(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  uint64_t num_tokens = 0, state_bytes = 0, draft_bytes = 0;
  std::memcpy(&num_tokens, b.data() + 24, 8);
  std::memcpy(&state_bytes, b.data() + 40, 8);
  const size_t section = 64 + num_tokens * 4 + 8 + state_bytes + 8;
  std::memcpy(&draft_bytes, b.data() + section, 8);
  b.erase(b.begin() + static_cast<std::ptrdiff_t>(section),
          b.begin() + static_cast<std::ptrdiff_t>(section + 16 + draft_bytes));
  const uint32_t v1 = 1;
  std::memcpy(b.data() + 8, &v1, 4);
  const uint64_t sum = kv::Checksum64({reinterpret_cast<const uint8_t*>(b.data()), 56});
  std::memcpy(b.data() + 56, &sum, 8);
  const uint64_t total = b.size();
  std::memcpy(b.data() + b.size() - 8, &total, 8);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(b.data(), static_cast<std::streamsize>(b.size()));
}

// A prompt of 300 tokens decoded past 384 (its prompt leaves snapshots at 128 and 256, its
// turn one at 384, taken in a speculative step); then a prompt sharing 300 tokens with it
// (hits 256) and the conversation's next turn (hits 384): with the real MTP drafter, K = 1
// and 3, the proposals after each hit equal those of a cold prefill, and so do the outputs.
TEST(DraftState, ProposalsAfterAPrefixHitEqualThoseAfterAColdPrefill) {
  Rng rng(5);
  const GenerationRequest first = Request(RandomTokens(rng, 300), 100);
  const std::vector<int32_t> first_out = Plain(first);
  std::vector<int32_t> shared(first.prompt);
  std::vector<int32_t> more = RandomTokens(rng, 20);
  shared.insert(shared.end(), more.begin(), more.end());
  std::vector<int32_t> turn(first.prompt);
  turn.insert(turn.end(), first_out.begin(), first_out.end());
  more = RandomTokens(rng, 10);
  turn.insert(turn.end(), more.begin(), more.end());
  const std::vector<GenerationRequest> hits = {Request(shared, 24), Request(turn, 24)};
  for (int64_t k : {1, 3}) {
    SCOPED_TRACE(k);
    auto log = std::make_shared<Proposals>();
    auto e = Engine::Create(engine_test::Tiny(), WithRecordedMtp(Caching(), log, k)).value();
    EXPECT_EQ(Collect(*e->Submit(first).value()), first_out);
    for (const GenerationRequest& r : hits) {
      log->clear();
      Proposals cold;
      const std::vector<int32_t> want = Cold(r, k, &cold);
      EXPECT_EQ(want, Plain(r));
      EXPECT_EQ(Collect(*e->Submit(r).value()), want);
      ASSERT_FALSE(cold.empty());
      EXPECT_EQ(*log, cold);
    }
    const EngineStats s = e->Stats();
    EXPECT_EQ(s.prefix_ram_hits, 2);
    EXPECT_EQ(s.prefix_ram_hit_tokens, 256 + 384);
    EXPECT_EQ(s.prefix_turn_snapshots, 1);
    EXPECT_EQ(s.spec_restored_states, 2);
    EXPECT_EQ(s.spec_unrestored_states, 0);
    EXPECT_GT(s.prefix_ram_draft_bytes, 0);
    EXPECT_EQ(KvBytesAfterClearingCache(*e), 0);
    EXPECT_EQ(e->Stats().prefix_ram_draft_bytes, 0);
  }
}

// DSpark keeps its state across a prefix hit too (one ring per draft block): the request that
// continues from the cached 256 tokens verifies exactly the drafts (count, per position and
// accepted) of the same request prefilled cold, and its output is unchanged.
TEST(DraftState, DsparkDraftsAfterAPrefixHitAsAfterAColdPrefill) {
  Rng rng(8);
  const GenerationRequest first = Request(RandomTokens(rng, 300), 8);
  std::vector<int32_t> shared(first.prompt);
  const std::vector<int32_t> more = RandomTokens(rng, 20);
  shared.insert(shared.end(), more.begin(), more.end());
  const GenerationRequest hit = Request(shared, 24);
  EngineOptions o = Caching();
  o.speculative = SpeculativeMode::kDspark;
  EngineOptions cold = o;
  cold.prefix_caching = false;
  const auto ce = Engine::Create(engine_test::TinyDspark(), cold).value();
  const std::vector<int32_t> want = Collect(*ce->Submit(hit).value());
  const EngineStats c = ce->Stats();
  ASSERT_GT(c.spec_draft_tokens, 0);
  EngineOptions off = cold;
  off.speculative = SpeculativeMode::kOff;
  EXPECT_EQ(Collect(*Engine::Create(engine_test::TinyDspark(), off).value()->Submit(hit).value()),
            want);

  const auto e = Engine::Create(engine_test::TinyDspark(), o).value();
  Collect(*e->Submit(first).value());
  const EngineStats before = e->Stats();
  EXPECT_EQ(Collect(*e->Submit(hit).value()), want);
  const EngineStats s = e->Stats();
  EXPECT_EQ(s.prefix_ram_hits, 1);
  EXPECT_EQ(s.prefix_ram_hit_tokens, 256);
  EXPECT_EQ(s.spec_restored_states, 1);
  EXPECT_EQ(s.spec_unrestored_states, 0);
  EXPECT_EQ(s.spec_verifications - before.spec_verifications, c.spec_verifications);
  EXPECT_EQ(s.spec_draft_tokens - before.spec_draft_tokens, c.spec_draft_tokens);
  EXPECT_EQ(s.spec_accepted_tokens - before.spec_accepted_tokens, c.spec_accepted_tokens);
  for (size_t i = 0; i < c.spec_drafted_at.size(); ++i) {
    EXPECT_EQ(s.spec_drafted_at[i] - before.spec_drafted_at[i], c.spec_drafted_at[i]) << i;
  }
}

// The disk tier: a restarted engine finds the drafter's state in the files and drafts from
// the first step exactly as after a cold prefill; files of the previous format (version 1,
// no drafter state) still restore the KV, the request then decodes without drafts, and its
// output is unchanged.
TEST(DraftState, DiskFilesKeepTheDrafterStateAcrossARestart) {
  TempDir dir;
  Rng rng(6);
  const GenerationRequest first = Request(RandomTokens(rng, 300), 6);
  // 270 tokens: the hit at 256 is inside the window of its first draft (W = 32).
  std::vector<int32_t> prompt(first.prompt.begin(), first.prompt.begin() + 260);
  const std::vector<int32_t> more = RandomTokens(rng, 10);
  prompt.insert(prompt.end(), more.begin(), more.end());
  const GenerationRequest hit = Request(prompt, 24);
  Proposals cold;
  const std::vector<int32_t> want = Cold(hit, 2, &cold);
  EXPECT_EQ(want, Plain(hit));
  auto log = std::make_shared<Proposals>();
  EngineOptions o = WithRecordedMtp(Caching(), log, 2);
  o.kv_cache_dir = dir.str();
  std::vector<std::string> warnings;
  o.on_warning = [&](const std::string& m) { warnings.push_back(m); };
  {
    auto e = Engine::Create(engine_test::Tiny(), o).value();
    Collect(*e->Submit(first).value());
  }  // shutdown writes the cached prefixes (128, 256) out
  ASSERT_EQ(dir.Files().size(), 2u);
  int64_t disk_bytes = 0;
  {
    log->clear();
    auto e = Engine::Create(engine_test::Tiny(), o).value();
    EXPECT_EQ(Collect(*e->Submit(hit).value()), want);
    EXPECT_EQ(*log, cold);
    const EngineStats s = e->Stats();
    EXPECT_EQ(s.prefix_disk_hits, 1);
    EXPECT_EQ(s.prefix_disk_hit_tokens, 256);
    EXPECT_EQ(s.spec_restored_states, 1);
    EXPECT_GT(s.prefix_ram_draft_bytes, 0);  // back in RAM with its drafter state
    disk_bytes = s.prefix_disk_bytes;
  }
  // The previous format: the same files without their draft sections.
  for (const fs::path& f : dir.Files()) MakeVersionOne(f);
  {
    log->clear();
    auto e = Engine::Create(engine_test::Tiny(), o).value();
    EXPECT_EQ(Collect(*e->Submit(hit).value()), want);
    EXPECT_TRUE(log->empty());
    const EngineStats s = e->Stats();
    EXPECT_EQ(s.prefix_disk_hits, 1);
    EXPECT_EQ(s.prefix_disk_rejected_files, 0);
    EXPECT_EQ(s.spec_restored_states, 0);
    EXPECT_EQ(s.spec_unrestored_states, 1);
    EXPECT_LT(s.prefix_disk_bytes, disk_bytes);  // the draft sections were counted
  }
  EXPECT_TRUE(warnings.empty()) << warnings.front();
}

// Auto mode with an injected cost model (a step verifying k drafts costs 1 + k/4 one-token
// steps): decisions are counted in verifications and steps.
EngineOptions Auto(EngineOptions o) {
  o.speculative = SpeculativeMode::kAuto;
  o.speculative_step_cost = [](int64_t k) { return 1.0 + 0.25 * static_cast<double>(k); };
  return o;
}

EngineOptions NoCache() {
  EngineOptions o;
  o.prefix_caching = false;
  return o;
}

// A never-right drafter: the request pauses after exactly DraftSwitch::kMinVerifications
// verifications, probes again after 8, 16, 32, ... of its steps, each probe as short; the
// output is unchanged. A mostly-right one (right except at every 7th position) never
// pauses: the same verifications as an explicit drafter.
TEST(DraftSwitchEngine, AutoPausesANeverRightDrafterAndKeepsAGoodOne) {
  Rng rng(7);
  const GenerationRequest shorter = Request(RandomTokens(rng, 20), 12);
  const GenerationRequest longer = Request(RandomTokens(rng, 20), 200);
  const std::vector<GenerationRequest> reqs = {shorter, longer};
  std::vector<std::vector<int32_t>> want;
  for (const auto& r : reqs) want.push_back(Plain(r));
  const auto refs = References(reqs, want);
  auto run = [&](const EngineOptions& o, const GenerationRequest& r, EngineStats* st) {
    auto e = Engine::Create(engine_test::Tiny(), o).value();
    std::vector<int32_t> out = Collect(*e->Submit(r).value());
    *st = e->Stats();
    return out;
  };
  EngineStats st;
  // 11 decode steps: 4 verifications, then paused for 8 steps (to the end).
  EXPECT_EQ(run(Auto(WithOracle(NoCache(), refs, engine_test::Never, 3)), shorter, &st), want[0]);
  EXPECT_EQ(st.spec_verifications, engine::DraftSwitch::kMinVerifications);
  EXPECT_EQ(st.spec_paused, 1);
  EXPECT_EQ(st.spec_paused_requests, 1);
  EXPECT_EQ(st.spec_paused_now, 0);
  // 199 decode steps: runs of 4 verifications (steps 1-4, 13-16, 33-36, 69-72, 137-140), each
  // followed by a pause of 8, 16, 32, 64, 128 steps.
  EXPECT_EQ(run(Auto(WithOracle(NoCache(), refs, engine_test::Never, 3)), longer, &st), want[1]);
  EXPECT_EQ(st.spec_paused, 5);
  EXPECT_EQ(st.spec_verifications, 4 * 5);
  EXPECT_EQ(st.spec_accepted_tokens, 0);
  // Mostly right: never paused, exactly as an explicit drafter.
  const auto mostly = [](int64_t p) { return p % 7 != 0; };
  EngineStats explicit_st;
  EXPECT_EQ(run(WithOracle(NoCache(), refs, mostly, 3), longer, &explicit_st), want[1]);
  EXPECT_EQ(run(Auto(WithOracle(NoCache(), refs, mostly, 3)), longer, &st), want[1]);
  EXPECT_EQ(st.spec_paused, 0);
  EXPECT_EQ(st.spec_verifications, explicit_st.spec_verifications);
  EXPECT_EQ(st.spec_accepted_tokens, explicit_st.spec_accepted_tokens);
  // An explicit drafter with a never-right oracle never pauses.
  EXPECT_EQ(run(WithOracle(NoCache(), refs, engine_test::Never, 3), longer, &st), want[1]);
  EXPECT_EQ(st.spec_paused, 0);
  EXPECT_EQ(st.spec_verifications, 199 - 1);  // every step but the last (k capped to 0)
}

// Many requests at once, greedy and sampled, a drafter right only on some positions and with
// hidden rows carried while paused (the real MTP drafter, auto mode with the engine's own
// measured cost): outputs identical to decoding without drafts, every page back.
TEST(DraftSwitchEngine, AutoModeNeverChangesOutput) {
  Rng rng(8);
  std::vector<GenerationRequest> reqs;
  for (int i = 0; i < 4; ++i) {
    GenerationRequest r = Request(RandomTokens(rng, 30 + 20 * i), 40 + 10 * i);
    if (i % 2) r.sampling = {.temperature = 0.8f, .top_k = 0, .top_p = 0.95f, .seed = 9u + i};
    reqs.push_back(r);
  }
  std::vector<std::vector<int32_t>> want;
  for (const auto& r : reqs) want.push_back(Plain(r));
  const auto refs = References(reqs, want);
  auto run_all = [&](const EngineOptions& o, EngineStats* st) {
    auto e = Engine::Create(engine_test::Tiny(), o).value();
    std::vector<std::shared_ptr<RequestStream>> streams;
    for (const auto& r : reqs) streams.push_back(e->Submit(r).value());
    std::vector<std::vector<int32_t>> out;
    for (auto& s : streams) out.push_back(Collect(*s));
    *st = e->Stats();
    EXPECT_EQ(KvBytesAfterClearingCache(*e), 0);
    return out;
  };
  EngineStats st;
  EXPECT_EQ(run_all(Auto(WithOracle(Caching(), refs, [](int64_t p) { return p % 3 == 0; }, 3)),
                    &st),
            want);
  EXPECT_GT(st.spec_paused, 0);
  EXPECT_EQ(st.spec_paused_now, 0);
  // The checkpoint's MTP drafter in auto mode, its cost measured; and one that always pays.
  EngineOptions measured = Caching();
  measured.speculative = SpeculativeMode::kAuto;
  EXPECT_EQ(run_all(measured, &st), want);
  EXPECT_EQ(st.spec_paused_now, 0);
  EngineOptions cheap = measured;
  cheap.speculative_step_cost = [](int64_t) { return 0.5; };  // drafting always pays
  EXPECT_EQ(run_all(cheap, &st), want);
  EXPECT_EQ(st.spec_paused, 0);
  EngineOptions dear = measured;
  dear.speculative_step_cost = [](int64_t k) { return 1.0 + static_cast<double>(k); };
  EXPECT_EQ(run_all(dear, &st), want);  // MTP's random weights accept nothing: paused
  EXPECT_GT(st.spec_paused, 0);
}

}  // namespace
}  // namespace dsv4
