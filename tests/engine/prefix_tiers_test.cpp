// Prefix cache tiers end to end on the built-in tiny model (and the tiny V3.2 one where
// marked): finished turns are cached (the
// next turn re-prefills only its new message and a < 128-token tail), RAM entries spill to
// disk and come back bit-identically (also after a restart), bad files and unusable folders
// never change an output.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "checkpoint/config.h"
#include "checkpoint/presets.h"
#include "core/rng.h"
#include "dsv4/engine.h"
#include "engine_fixtures.h"
#include "kv/page_layout.h"
#include "runner/loaded_model.h"
#include "testing/weight_generator.h"

namespace dsv4 {
namespace {

using engine_test::Collect;
using engine_test::KvBytesAfterClearingCache;
using engine_test::Tiny;
using engine_test::TinyV32;

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::vector<int32_t> Cold(const GenerationRequest& r, const ModelFactory& model = Tiny()) {
  EngineOptions off;
  off.prefix_caching = false;
  auto e = Engine::Create(model, off).value();
  return Collect(*e->Submit(r).value());
}

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("dsv4_tiers_test_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string str() const { return path_.string(); }
  std::vector<fs::path> Files(const std::string& suffix = ".dsv4kv") const {
    std::vector<fs::path> out;
    if (!fs::exists(path_)) return out;
    for (const auto& e : fs::directory_iterator(path_)) {
      if (e.path().extension() == suffix) out.push_back(e.path());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  fs::path path_;
};

std::vector<int32_t> RandomTokens(Rng& rng, int64_t n) {
  std::vector<int32_t> t;
  for (int64_t i = 0; i < n; ++i) t.push_back(static_cast<int32_t>(rng.Below(512)));
  return t;
}

// Three turns of one conversation: each turn's prompt is everything so far plus a new
// message. Every turn after the first restores the previous turn's snapshot (the last
// multiple of 128 whose KV the previous turn computed: its final sampled token has none) and
// computes only the rest: the new message plus a tail shorter than 128.
TEST(PrefixTiers, FinishedTurnsAreCachedAndTheNextTurnComputesOnlyItsTail) {
  Rng rng(3);
  EngineOptions on;
  auto e = Engine::Create(Tiny(), on).value();
  std::vector<int32_t> convo = RandomTokens(rng, 150);
  int64_t prompt_tokens_before = 0, hit_tokens_before = 0;
  for (int turn = 0; turn < 3; ++turn) {
    GenerationRequest r;
    r.prompt = convo;
    r.stop = {.max_new_tokens = 90 + 20 * turn, .ignore_eos = true};
    r.sampling.temperature = turn == 1 ? 0.8f : 0.0f;
    r.sampling.seed = 11;
    const std::vector<int32_t> got = Collect(*e->Submit(r).value());
    EXPECT_EQ(got, Cold(r)) << "turn " << turn;
    const EngineStats s = e->Stats();
    const int64_t computed = s.prompt_tokens - prompt_tokens_before;
    const int64_t hit = s.prefix_hit_tokens - hit_tokens_before;
    if (turn > 0) {
      EXPECT_GT(hit, 0) << turn;
      EXPECT_EQ(hit % 128, 0) << turn;
      EXPECT_EQ(hit + computed, static_cast<int64_t>(r.prompt.size())) << turn;
      EXPECT_LT(computed, 40 + 128) << turn;  // the new message (40) + a tail < 128
    }
    prompt_tokens_before = s.prompt_tokens;
    hit_tokens_before = s.prefix_hit_tokens;
    convo = r.prompt;
    convo.insert(convo.end(), got.begin(), got.end());
    const std::vector<int32_t> message = RandomTokens(rng, 40);
    convo.insert(convo.end(), message.begin(), message.end());
  }
  const EngineStats s = e->Stats();
  // Turn 0 (150 + 90 tokens) passed no multiple of 128 after its prompt (its prompt's 128
  // is the hit of turn 1); turns 1 and 2 left 384 and 512.
  EXPECT_EQ(s.prefix_turn_snapshots, 2);
  EXPECT_EQ(s.prefix_ram_hits, 2);
  EXPECT_EQ(KvBytesAfterClearingCache(*e), 0);
}

// A RAM tier too small to keep anything for long: entries spill to disk, come back from it
// bit-identically, and a second engine on the same folder (a restart) restores what the
// first left there; every page returns, the disk budget holds. On either model: V4 files hold
// window rings and compressor state besides the compressed pages, V3.2 files MLA records and
// indexer keys only.
void SpillAndRestart(const ModelFactory& model, const checkpoint::ModelConfig& config) {
  TempDir dir;
  Rng rng(4);
  const kv::PageLayout layout(config, kv::DefaultKvFormats(config.arch));
  std::vector<GenerationRequest> first, second;
  for (int i = 0; i < 4; ++i) {
    GenerationRequest r;
    r.prompt = RandomTokens(rng, 300 + 40 * i);
    r.stop = {.max_new_tokens = 4, .ignore_eos = true};
    first.push_back(r);
    GenerationRequest again = r;
    const std::vector<int32_t> more = RandomTokens(rng, 20);
    again.prompt.insert(again.prompt.end(), more.begin(), more.end());
    second.push_back(again);
  }
  EngineOptions o;
  o.prefix_snapshot_interval = 128;
  o.kv_budget_bytes = layout.BytesAt(520) + layout.BytesAt(200);
  o.kv_cache_dir = dir.str();
  o.kv_cache_disk_budget_bytes = 64 << 20;
  std::vector<std::string> warnings;
  o.on_warning = [&](const std::string& m) { warnings.push_back(m); };
  {
    auto e = Engine::Create(model, o).value();
    for (const auto& r : first) EXPECT_EQ(Collect(*e->Submit(r).value()), Cold(r, model));
    // Each prompt evicted the one before: those went to disk, and come back from there.
    for (const auto& r : second) EXPECT_EQ(Collect(*e->Submit(r).value()), Cold(r, model));
    const EngineStats s = e->Stats();
    EXPECT_GT(s.prefix_disk_writes, 0);
    EXPECT_GT(s.prefix_disk_hits, 0);
    EXPECT_LE(s.kv.used_bytes, o.kv_budget_bytes);
    EXPECT_LE(s.prefix_disk_bytes, o.kv_cache_disk_budget_bytes);
    EXPECT_EQ(static_cast<int64_t>(dir.Files().size()), s.prefix_disk_entries);
  }  // shutdown writes the RAM entries out too
  const size_t files = dir.Files().size();
  EXPECT_GE(files, 4u);
  {
    auto e = Engine::Create(model, o).value();
    EXPECT_EQ(e->Stats().prefix_disk_entries, static_cast<int64_t>(files));
    for (const auto& r : second) EXPECT_EQ(Collect(*e->Submit(r).value()), Cold(r, model));
    const EngineStats s = e->Stats();
    EXPECT_EQ(s.prefix_disk_hits, 4);
    EXPECT_GT(s.prefix_disk_restore_seconds, 0);
    EXPECT_EQ(KvBytesAfterClearingCache(*e), 0);
    EXPECT_TRUE(dir.Files().empty());  // clearing the cache deletes its files
  }
  EXPECT_TRUE(warnings.empty()) << warnings.front();
  EXPECT_TRUE(dir.Files(".tmp").empty());
}

TEST(PrefixTiers, SpilledPrefixesComeBackFromDiskAlsoAfterARestart) {
  SpillAndRestart(Tiny(), checkpoint::TinyV4Config());
}

TEST(PrefixTiers, SpilledV32PrefixesComeBackFromDiskAlsoAfterARestart) {
  SpillAndRestart(TinyV32(), checkpoint::TinyV32Config());
}

// Files that cannot be trusted (corrupted, truncated as by a kill -9, a leftover temporary,
// written for another model) are skipped with a warning naming them; the outputs are the
// cold ones.
TEST(PrefixTiers, BadFilesAreSkippedAndNeverChangeOutput) {
  TempDir dir;
  Rng rng(5);
  GenerationRequest a, b;
  a.prompt = RandomTokens(rng, 260);
  b.prompt = RandomTokens(rng, 400);
  a.stop = b.stop = {.max_new_tokens = 3, .ignore_eos = true};
  EngineOptions o;
  o.kv_cache_dir = dir.str();
  {
    auto e = Engine::Create(Tiny(), o).value();
    Collect(*e->Submit(a).value());
    Collect(*e->Submit(b).value());
  }
  std::vector<fs::path> files = dir.Files();
  ASSERT_EQ(files.size(), 2u);  // 256 of a, 384 of b
  const fs::path fa = files[0].filename().string().starts_with("256-") ? files[0] : files[1];
  const fs::path fb = fa == files[0] ? files[1] : files[0];
  // a: one flipped bit deep inside a page; b: cut short, with a complete leftover temporary.
  {
    std::fstream f(fa, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(fa) / 2));
    char c;
    f.read(&c, 1);
    f.seekp(static_cast<std::streamoff>(fs::file_size(fa) / 2));
    c ^= 4;
    f.write(&c, 1);
  }
  fs::copy_file(fb, fb.string() + ".tmp.99999");
  fs::resize_file(fb, fs::file_size(fb) - 4096);
  std::vector<std::string> warnings;
  o.on_warning = [&](const std::string& m) { warnings.push_back(m); };
  auto e = Engine::Create(Tiny(), o).value();
  for (const GenerationRequest* r : {&a, &b}) {
    GenerationRequest longer = *r;
    longer.prompt.push_back(7);
    EXPECT_EQ(Collect(*e->Submit(longer).value()), Cold(longer));
  }
  const EngineStats s = e->Stats();
  EXPECT_EQ(s.prefix_disk_hits, 0);
  EXPECT_EQ(s.prefix_disk_rejected_files, 2);
  std::string all;
  for (const auto& w : warnings) all += w + "\n";
  EXPECT_THAT(all, HasSubstr(fa.string()));
  EXPECT_THAT(all, HasSubstr(fb.string()));
  EXPECT_EQ(KvBytesAfterClearingCache(*e), 0);
}

// A folder that cannot be used is reported once; serving goes on as with no disk tier.
TEST(PrefixTiers, AnUnusableFolderIsReportedOnceAndServingContinues) {
  Rng rng(6);
  std::vector<std::string> warnings;
  EngineOptions o;
  o.kv_cache_dir = "/proc/dsv4-no-such-folder/kv";
  o.kv_budget_bytes = kv::PageLayout(checkpoint::TinyV4Config(),
                                     kv::DefaultKvFormats(checkpoint::Arch::kV4)).BytesAt(700);
  o.on_warning = [&](const std::string& m) { warnings.push_back(m); };
  auto e = Engine::Create(Tiny(), o).value();
  for (int i = 0; i < 3; ++i) {
    GenerationRequest r;
    r.prompt = RandomTokens(rng, 300);
    r.stop = {.max_new_tokens = 3, .ignore_eos = true};
    EXPECT_EQ(Collect(*e->Submit(r).value()), Cold(r));
  }
  EXPECT_FALSE(e->Stats().prefix_disk_storing);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_THAT(warnings[0], HasSubstr("/proc/dsv4-no-such-folder/kv"));
}

}  // namespace
}  // namespace dsv4

namespace dsv4 {
namespace {

// The randomised mix of engine_test.cpp with both new tiers: a first round of requests
// sharing prefixes (some cancelled), then a second round whose prompts extend the first
// round's finished turns (prompt + output + a new message), under a KV budget that keeps few
// entries in RAM and a disk budget that keeps few files. Every completed request equals its
// cold output; the KV and disk budgets hold at every check; once cleared, no page and no
// file is left.
// `disk_budget`: room for one or two files (V4 ~0.25 MB, V3.2 ~0.5 MB at these lengths), so
// LRU deletes the rest; `kv_seqs`: the KV budget in sequences of 450 tokens (V3.2's snapshots
// share their pages with the sequences, so its RAM tier fills only under a tighter budget).
void RandomisedTurns(const ModelFactory& model, const checkpoint::ModelConfig& config,
                     int64_t disk_budget, int64_t kv_seqs) {
  TempDir dir;
  Rng rng(91);
  const std::vector<int32_t> base = RandomTokens(rng, 400);
  const kv::PageLayout layout(config, kv::DefaultKvFormats(config.arch));
  EngineOptions o;
  o.prefix_snapshot_interval = 128;
  o.kv_budget_bytes = kv_seqs * layout.BytesAt(450);
  o.max_num_batched_tokens = 96;
  o.max_num_seqs = 3;
  o.kv_cache_dir = dir.str();
  o.kv_cache_disk_budget_bytes = disk_budget;
  std::vector<std::string> warnings;
  o.on_warning = [&](const std::string& m) { warnings.push_back(m); };
  auto e = Engine::Create(model, o).value();
  auto check_budgets = [&] {
    const EngineStats s = e->Stats();
    EXPECT_LE(s.kv.used_bytes, o.kv_budget_bytes);
    EXPECT_LE(s.prefix_disk_bytes, o.kv_cache_disk_budget_bytes);
  };
  std::vector<GenerationRequest> finished_turns;
  int completed = 0;
  for (int round = 0; round < 2; ++round) {
    std::vector<GenerationRequest> reqs;
    for (int i = 0; i < 7; ++i) {
      GenerationRequest r;
      if (round == 1 && !finished_turns.empty() && rng.Below(4) != 0) {
        r.prompt = finished_turns[rng.Below(finished_turns.size())].prompt;
      } else {
        r.prompt.assign(base.begin(), base.begin() + 100 + static_cast<int64_t>(rng.Below(250)));
      }
      const std::vector<int32_t> msg = RandomTokens(rng, 1 + static_cast<int64_t>(rng.Below(30)));
      r.prompt.insert(r.prompt.end(), msg.begin(), msg.end());
      r.stop = {.max_new_tokens = 20 + static_cast<int64_t>(rng.Below(120)), .ignore_eos = true};
      if (rng.Below(3) == 0) {
        r.sampling.temperature = 0.7f;
        r.sampling.seed = rng.Below(1000);
      }
      reqs.push_back(r);
    }
    std::vector<std::shared_ptr<RequestStream>> streams;
    std::vector<bool> cancelled(reqs.size(), false);
    for (size_t i = 0; i < reqs.size(); ++i) {
      streams.push_back(e->Submit(reqs[i]).value());
      if (rng.Below(5) == 0) {
        e->Cancel(streams.back()->id());
        cancelled[i] = true;
      }
    }
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
      }
      check_budgets();
      if (reason == FinishReason::kLength) {
        EXPECT_EQ(got, Cold(reqs[i], model)) << round << " " << i;
        ++completed;
        GenerationRequest turn = reqs[i];
        turn.prompt.insert(turn.prompt.end(), got.begin(), got.end());
        finished_turns.push_back(turn);
      } else {
        EXPECT_TRUE(cancelled[i]) << round << " " << i;
      }
    }
  }
  const EngineStats s = e->Stats();
  EXPECT_GE(completed, 8);
  EXPECT_GT(s.prefix_turn_snapshots, 0);
  EXPECT_GT(s.prefix_disk_writes, 0);
  EXPECT_GT(s.prefix_hits, 0);
  EXPECT_EQ(static_cast<int64_t>(dir.Files().size()), s.prefix_disk_entries);
  EXPECT_EQ(KvBytesAfterClearingCache(*e), 0);
  EXPECT_TRUE(dir.Files().empty());
  EXPECT_TRUE(dir.Files(".tmp").empty());
  EXPECT_TRUE(warnings.empty());
}

TEST(PrefixTiers, RandomisedTurnsWithDiskSpillsLeakNothing) {
  RandomisedTurns(Tiny(), checkpoint::TinyV4Config(), 400 << 10, 3);
}

TEST(PrefixTiers, RandomisedV32TurnsWithDiskSpillsLeakNothing) {
  RandomisedTurns(TinyV32(), checkpoint::TinyV32Config(), 1200 << 10, 2);
}

}  // namespace
}  // namespace dsv4
