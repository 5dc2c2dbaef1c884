// Speculative rollback of a V3.2 sequence (kv::V32SequenceCache BeginSpeculation /
// RollbackTo): records and indexer keys are per token, so rolling back truncates them and
// releases the pages past what the accepted tokens need; the state (records, keys with their
// whole pages, pages held, the manager's accounting) and the next tokens' logits are then
// those of a sequence that only saw the accepted tokens, on both sides of page boundaries.
#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "../state_digest.h"
#include "checkpoint/presets.h"
#include "checkpoint/tensor_store.h"
#include "core/rng.h"
#include "kv/v32_cache.h"
#include "models/v32/model.h"
#include "runner/causal_lm.h"
#include "testing/weight_generator.h"

namespace dsv4::v32 {
namespace {

using ::dsv4::test::SameState;
using ::dsv4::test::StateDigest;
using checkpoint::ModelConfig;

constexpr int64_t kLength = 200;
constexpr int64_t kBudget = int64_t{1} << 30;

kv::PageLayout Layout(const ModelConfig& c) {
  return kv::PageLayout(c, kv::DefaultKvFormats(checkpoint::Arch::kV32));
}

// Records and keys of every layer (the keys as whole pages: slots past the count too), the
// pages held and the manager's accounting.
StateDigest Digest(const kv::V32SequenceCache& cache, const ModelConfig& c,
                   const kv::KvManager& manager) {
  StateDigest d;
  d.push_back({"tokens", std::to_string(cache.num_tokens()) + ", reserved " +
                             std::to_string(cache.reserved_tokens())});
  ::dsv4::test::AddUsage(cache.Usage(), &d);
  ::dsv4::test::AddManager(manager, &d);
  std::string bytes;
  std::vector<const uint8_t*> pages;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string layer = "layer " + std::to_string(l) + " ";
    bytes.clear();
    for (int64_t p = 0; p < cache.NumRecords(l); ++p) {
      bytes.append(reinterpret_cast<const char*>(cache.MlaRecord(l, p)),
                   static_cast<size_t>(cache.record_bytes()));
    }
    d.push_back({layer + "records", std::to_string(cache.NumRecords(l)) + ": " +
                                        ::dsv4::test::BytesHash(bytes.data(), bytes.size())});
    cache.IndexerKeyPages(l, cache.NumIndexerKeys(l), &pages);
    bytes.clear();
    for (const uint8_t* page : pages) {
      bytes.append(reinterpret_cast<const char*>(page),
                   static_cast<size_t>(cache.keys_per_page() * cache.indexer_key_bytes()));
    }
    d.push_back({layer + "indexer key pages", std::to_string(cache.NumIndexerKeys(l)) + " keys: " +
                                                  ::dsv4::test::BytesHash(bytes.data(), bytes.size())});
  }
  return d;
}

// The tiny V3.2 model, a token stream, tokens that differ from it everywhere (rejected
// drafts), and a reference fed the stream one token at a time: its digest after each length
// and each position's logits.
struct Fixture {
  ModelConfig config;
  std::unique_ptr<checkpoint::TensorStore> store;
  std::unique_ptr<Model> model;
  std::vector<int32_t> tokens, junk;       // [kLength + 8]
  std::vector<StateDigest> digest;         // [kLength + 1]
  std::vector<std::vector<float>> logits;  // [kLength][vocab]
};

const Fixture& Tiny() {
  static const Fixture* f = [] {
    auto* fx = new Fixture;
    fx->config = checkpoint::TinyV32Config();
    fx->store = checkpoint::TensorStore::Create(
                    "tiny v3.2", fixtures::GenerateWeights(fx->config, fixtures::kDefaultSeed).value())
                    .value();
    fx->model = Model::Create(fx->config, *fx->store).value();
    const int64_t V = fx->config.vocab_size;
    Rng rng(3232);
    for (int64_t i = 0; i < kLength + 8; ++i) {
      fx->tokens.push_back(static_cast<int32_t>(rng.Below(V)));
      fx->junk.push_back(static_cast<int32_t>((fx->tokens.back() + 1 + rng.Below(V - 1)) % V));
    }
    ThreadPool pool(2);
    kv::KvManager manager(Layout(fx->config), kBudget);
    kv::V32SequenceCache ref(fx->config, &manager);
    fx->logits.resize(kLength);
    for (int64_t n = 0; n <= kLength; ++n) {
      fx->digest.push_back(Digest(ref, fx->config, manager));
      if (n == kLength) break;
      EXPECT_TRUE(fx->model->Forward(pool, ref, {fx->tokens.data() + n, 1}, LogitsMode::kLast,
                                     &fx->logits[n]).ok());
    }
    return fx;
  }();
  return *f;
}

bool SameFloats(const float* a, const float* b, int64_t n) {
  return std::memcmp(a, b, static_cast<size_t>(n) * sizeof(float)) == 0;
}

struct Seq {
  explicit Seq(const ModelConfig& c) : manager(Layout(c), kBudget), cache(c, &manager) {}
  kv::KvManager manager;
  kv::V32SequenceCache cache;
};

// Marks `s` (at n0) for fed - n0 tokens, feeds the stream's [n0, n) then junk up to fed in
// chunks of `chunks`, rolls back to n and checks the accepted logits, the state against the
// reference at n and the logits of continuing with the next two tokens (s ends at n + 2).
void SpeculateAndCheck(const Fixture& f, ThreadPool& pool, Seq& s, int64_t fed, int64_t n,
                       const std::vector<int64_t>& chunks) {
  const int64_t n0 = s.cache.num_tokens(), V = f.config.vocab_size;
  const std::string where = "mark " + std::to_string(n0) + ", fed " + std::to_string(fed) +
                            ", accepted " + std::to_string(n);
  ASSERT_TRUE(s.cache.BeginSpeculation(fed - n0).ok()) << where;
  std::vector<int32_t> verify;
  for (int64_t p = n0; p < fed; ++p) verify.push_back(p < n ? f.tokens[p] : f.junk[p]);
  std::vector<float> part;
  int64_t done = 0;
  for (int64_t len : chunks) {
    ASSERT_TRUE(f.model->Forward(pool, s.cache, {verify.data() + done, static_cast<size_t>(len)},
                                 LogitsMode::kAll, &part).ok()) << where;
    for (int64_t p = n0 + done; p < std::min(n, n0 + done + len); ++p) {
      EXPECT_TRUE(SameFloats(part.data() + (p - n0 - done) * V, f.logits[p].data(), V))
          << where << ": logits of accepted position " << p;
    }
    done += len;
  }
  ASSERT_TRUE(s.cache.RollbackTo(n).ok()) << where;
  EXPECT_TRUE(SameState(f.digest[n], Digest(s.cache, f.config, s.manager))) << where;
  ASSERT_TRUE(f.model->Forward(pool, s.cache, {f.tokens.data() + n, 2}, LogitsMode::kAll,
                               &part).ok()) << where;
  for (int64_t j = 0; j < 2; ++j) {
    EXPECT_TRUE(SameFloats(part.data() + j * V, f.logits[n + j].data(), V))
        << where << ": logits of continuing at " << n + j;
  }
}

// Marked just before and on a 64-record page boundary and past the second: verify steps of
// 2, 5 and 8 tokens (one chunk; 8 also in three), rolled back to every accepted length.
TEST(V32Rollback, EveryAcceptedLengthAcrossPageBoundaries) {
  const Fixture& f = Tiny();
  ThreadPool pool(2);
  Seq s(f.config);
  for (int64_t n0 : {60, 63, 64, 127, 129}) {
    for (int64_t len : {2, 5, 8}) {
      for (int64_t n = n0; n <= n0 + len; ++n) {
        s.cache.Release();
        ASSERT_TRUE(f.model->Forward(pool, s.cache, {f.tokens.data(), static_cast<size_t>(n0)},
                                     LogitsMode::kNone, nullptr).ok());
        SpeculateAndCheck(f, pool, s, n0 + len, n, {len});
        if (len != 8) continue;
        s.cache.Release();
        ASSERT_TRUE(f.model->Forward(pool, s.cache, {f.tokens.data(), static_cast<size_t>(n0)},
                                     LogitsMode::kNone, nullptr).ok());
        SpeculateAndCheck(f, pool, s, n0 + len, n, {3, 1, 4});
      }
    }
  }
}

// Speculative decoding from the first token on: random verify lengths, chunkings and
// accepted prefixes, each cycle checked against the reference.
TEST(V32Rollback, RepeatedCyclesFollowTheReference) {
  const Fixture& f = Tiny();
  ThreadPool pool(2);
  Seq s(f.config);
  Rng rng(5);
  std::vector<float> part;
  int cycles = 0;
  while (s.cache.num_tokens() < kLength - 8) {
    const int64_t p = s.cache.num_tokens();
    const int64_t len = 1 + static_cast<int64_t>(rng.Below(8));
    const int64_t n = p + static_cast<int64_t>(rng.Below(static_cast<uint64_t>(len + 1)));
    ASSERT_TRUE(s.cache.BeginSpeculation(len).ok());
    std::vector<int32_t> verify;
    for (int64_t q = p; q < p + len; ++q) verify.push_back(q < n ? f.tokens[q] : f.junk[q]);
    const size_t split = rng.Below(static_cast<uint64_t>(len) + 1);
    ASSERT_TRUE(f.model->Forward(pool, s.cache, {verify.data(), split}, LogitsMode::kNone,
                                 nullptr).ok());
    ASSERT_TRUE(f.model->Forward(pool, s.cache, {verify.data() + split, verify.size() - split},
                                 LogitsMode::kNone, nullptr).ok());
    if (n == p + len && rng.Below(2) == 0) {
      s.cache.EndSpeculation();
    } else {
      ASSERT_TRUE(s.cache.RollbackTo(n).ok());
    }
    ASSERT_TRUE(SameState(f.digest[n], Digest(s.cache, f.config, s.manager)))
        << "cycle " << cycles << ": marked at " << p << ", fed " << len << ", accepted " << n;
    ++cycles;
  }
  EXPECT_GT(cycles, 30);
}

// Through the runner: forward past the mark fails for the whole batch without advancing
// anyone; no snapshot while marked; rollback to the mark.
TEST(V32Rollback, SequenceStateErrorsAndSnapshots) {
  const Fixture& f = Tiny();
  ThreadPool pool(1);
  std::unique_ptr<runner::CausalLm> lm = runner::CreateCausalLm(f.config, *f.store).value();
  kv::KvManager manager(lm->page_layout(), kBudget);
  std::unique_ptr<kv::SequenceState> a = lm->NewSequence(&manager), b = lm->NewSequence(&manager);
  EXPECT_TRUE(a->supports_rollback());
  ASSERT_TRUE(lm->Forward(pool, *a, {f.tokens.data(), 128}, LogitsMode::kNone, nullptr).ok());
  ASSERT_TRUE(a->BeginSpeculation(2).ok());
  EXPECT_EQ(a->BeginSpeculation(2).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(a->TakeSnapshot(), nullptr);
  const std::vector<runner::CausalLm::BatchItem> batch = {
      {b.get(), {f.tokens.data(), 5}, LogitsMode::kNone, nullptr},
      {a.get(), {f.junk.data() + 128, 3}, LogitsMode::kNone, nullptr}};
  const Status past = lm->ForwardBatch(pool, batch);
  EXPECT_EQ(past.code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(past.message(), ::testing::HasSubstr("passes the speculation mark at 128 + 2"));
  EXPECT_EQ(a->num_tokens(), 128);
  EXPECT_EQ(b->num_tokens(), 0);
  ASSERT_TRUE(lm->Forward(pool, *a, {f.junk.data() + 128, 2}, LogitsMode::kNone, nullptr).ok());
  EXPECT_EQ(a->RollbackTo(131).code(), StatusCode::kOutOfRange);
  ASSERT_TRUE(a->RollbackTo(128).ok());
  EXPECT_EQ(a->Usage().total_bytes(), lm->page_layout().BytesAt(128));
  EXPECT_NE(a->TakeSnapshot(), nullptr);
}

}  // namespace
}  // namespace dsv4::v32
