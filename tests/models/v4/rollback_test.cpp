// Speculative rollback of a V4 sequence (kv::V4SequenceCache BeginSpeculation / RollbackTo /
// EndSpeculation): after a verify forward of accepted and rejected tokens, rolling back to any
// accepted length leaves the state bit for bit that of a sequence that only ever saw the
// accepted tokens (every window-ring slot, both compressor states, entries, indexer keys,
// pages, the manager's accounting), and the next tokens get the same logits, on both sides of
// the 4- and 128-token boundaries, for any chunking of the verify step.
#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "../state_digest.h"
#include "core/rng.h"
#include "kv/snapshot_file.h"
#include "kv/v4_cache.h"
#include "models/v4/model.h"
#include "runner/causal_lm.h"
#include "testing/weight_generator.h"

namespace dsv4::v4 {
namespace {

using checkpoint::LayerKind;
using checkpoint::ModelConfig;
using test::SameState;
using test::StateDigest;

constexpr int64_t kLength = 300;  // reference tokens
constexpr int64_t kBudget = int64_t{1} << 30;

kv::PageLayout Layout(const ModelConfig& c) {
  return kv::PageLayout(c, kv::DefaultKvFormats(checkpoint::Arch::kV4));
}

// Everything of `cache` a later token can read (every ring slot of the window pages held,
// entries, indexer keys, both compressor states) and its pages.
StateDigest Digest(kv::V4SequenceCache& cache, const ModelConfig& c) {
  StateDigest d;
  d.push_back({"tokens", std::to_string(cache.num_tokens()) + ", reserved " +
                             std::to_string(cache.reserved_tokens())});
  const kv::KvFootprint usage = cache.Usage();
  test::AddUsage(usage, &d);
  int64_t window_pages = 0;  // every layer holds the same window pages
  for (const kv::KvComponent& comp : usage.components) {
    if (comp.name == "swa_window") window_pages = comp.entries_per_layer / c.num_hidden_layers;
  }
  const int64_t slots = std::min<int64_t>(
      c.sliding_window,
      window_pages * cache.layout().Find(kv::Component::kSwaWindow)->entries_per_page);
  std::string bytes;
  auto add_rows = [&](const std::string& name, int64_t count, auto row, int64_t row_bytes) {
    bytes.clear();
    for (int64_t i = 0; i < count; ++i) {
      bytes.append(reinterpret_cast<const char*>(row(i)), static_cast<size_t>(row_bytes));
    }
    d.push_back({name, std::to_string(count) + " rows, " + test::BytesHash(bytes.data(), bytes.size())});
  };
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string layer = "layer " + std::to_string(l) + " ";
    add_rows(layer + "ring", slots, [&](int64_t s) { return cache.WindowRow(l, s); },
             cache.entry_bytes());
    const LayerKind kind = c.layer_kind(l);
    if (kind == LayerKind::kSwa) continue;
    add_rows(layer + "entries", cache.NumEntries(l), [&](int64_t i) { return cache.Entry(l, i); },
             cache.entry_bytes());
    if (kind == LayerKind::kCsa) {
      add_rows(layer + "indexer keys", cache.NumIndexerKeys(l),
               [&](int64_t i) { return cache.IndexerKey(l, i); }, cache.indexer_key_bytes());
    }
    if (cache.reserved_tokens() == 0) continue;  // no state pages yet
    for (int which = 0; which < (kind == LayerKind::kCsa ? 2 : 1); ++which) {
      const kv::CompressorState& s = cache.State(l, which);
      const std::string name = layer + (which == 0 ? "compressor " : "indexer compressor ");
      // Rows [live, rows) of a kappa-1 state are stale: the next tokens overwrite them before
      // a window is pooled. A sequence restored from a snapshot has them reset, one fed from
      // the start holds the previous window's there.
      const int64_t row = s.row_width();
      const int64_t live = s.kappa == 2 ? s.rows() : cache.num_tokens() % s.ratio;
      d.push_back({name + "kv", test::BytesHash(s.kv, live * row * sizeof(float))});
      d.push_back({name + "score", test::BytesHash(s.score, live * row * sizeof(float))});
      if (s.kappa == 2) continue;
      const size_t stale = static_cast<size_t>((s.rows() - live) * row) * sizeof(float);
      d.push_back({name + "kv stale rows", test::BytesHash(s.kv + live * row, stale)});
      d.push_back({name + "score stale rows", test::BytesHash(s.score + live * row, stale)});
    }
  }
  return d;
}

StateDigest Accounting(const kv::KvManager& manager) {
  StateDigest d;
  test::AddManager(manager, &d);
  return d;
}

// The bytes of a snapshot image of `cache` (at a multiple of 128): whole pages, so the slots
// past the entry and key counts are compared too.
std::string ImageBytes(kv::V4SequenceCache& cache) {
  std::unique_ptr<kv::PrefixSnapshot> snap = cache.TakeSnapshot();
  EXPECT_NE(snap, nullptr);
  if (snap == nullptr) return {};
  kv::SnapshotImage image;
  EXPECT_TRUE(snap->ExportImage(&image));
  std::string out(image.state.begin(), image.state.end());
  for (const kv::SnapshotImage::Page& p : image.pages) {
    out += std::to_string(p.component) + "/" + std::to_string(p.layer) + ":";
    out.append(p.bytes.begin(), p.bytes.end());
  }
  return out;
}

// The tiny model, a token stream, tokens that differ from it at every position (the rejected
// drafts), and a reference sequence fed the stream one token at a time: its digest after each
// length, each position's logits, and snapshot images at 128 and 256.
struct Fixture {
  checkpoint::Checkpoint ck;
  std::unique_ptr<Model> model;
  std::vector<int32_t> tokens, junk;                // [kLength + 8]
  std::vector<StateDigest> digest;                  // [kLength + 1]: the cache
  std::vector<StateDigest> accounting;              // [kLength + 1]: its manager
  std::vector<std::vector<float>> logits;           // [kLength][vocab]
  std::string image128, image256;
  const ModelConfig& config() const { return ck.config; }
};

const Fixture& Tiny() {
  static const Fixture* f = [] {
    auto* fx = new Fixture;
    fx->ck = fixtures::BuiltinDefaultModel().value();
    fx->model = Model::Create(fx->ck.config, *fx->ck.weights).value();
    const int64_t V = fx->ck.config.vocab_size;
    Rng rng(1717);
    for (int64_t i = 0; i < kLength + 8; ++i) {
      fx->tokens.push_back(static_cast<int32_t>(rng.Below(V)));
      fx->junk.push_back(static_cast<int32_t>((fx->tokens.back() + 1 + rng.Below(V - 1)) % V));
    }
    ThreadPool pool(2);
    kv::KvManager manager(Layout(fx->ck.config), kBudget);
    kv::V4SequenceCache ref(fx->ck.config, &manager);
    fx->logits.resize(kLength);
    for (int64_t n = 0; n <= kLength; ++n) {
      fx->digest.push_back(Digest(ref, fx->ck.config));
      fx->accounting.push_back(Accounting(manager));
      if (n == 128) fx->image128 = ImageBytes(ref);
      if (n == 256) fx->image256 = ImageBytes(ref);
      if (n == kLength) break;
      EXPECT_TRUE(fx->model->Forward(pool, ref, {fx->tokens.data() + n, 1}, LogitsMode::kLast,
                                     &fx->logits[n]).ok());
    }
    return fx;
  }();
  return *f;
}

bool SameFloats(const float* a, const float* b, size_t n) {
  return std::memcmp(a, b, n * sizeof(float)) == 0;
}

// A sequence on its own manager, and snapshots of the stream at 128 and 256 that FeedPrefix
// starts over from (made on first use). While those are held the manager's accounting
// includes their pages, and the sequence may have been restored from one (stale HCA rows
// reset), so Matches compares those only for a sequence without them.
struct Seq {
  explicit Seq(const ModelConfig& c) : manager(Layout(c), kBudget), cache(c, &manager) {}
  kv::KvManager manager;
  kv::V4SequenceCache cache;
  std::vector<std::unique_ptr<kv::PrefixSnapshot>> bases;  // at 128 and 256
};

// The state of `s` is the reference's after n tokens (and so is its accounting, where
// comparable).
::testing::AssertionResult Matches(const Fixture& f, Seq& s, int64_t n) {
  if (!s.bases.empty()) return SameState(f.digest[n], Digest(s.cache, f.config()), "stale rows");
  ::testing::AssertionResult same = SameState(f.digest[n], Digest(s.cache, f.config()));
  if (!same) return same;
  return SameState(f.accounting[n], Accounting(s.manager));
}

// Starts `s` over at the first n0 tokens of the stream: from the latest snapshot at or
// before n0, then the rest in one chunk.
void FeedPrefix(const Fixture& f, ThreadPool& pool, Seq& s, int64_t n0) {
  if (s.bases.empty()) {
    kv::V4SequenceCache base(f.config(), &s.manager);
    for (int64_t p : {0, 128}) {
      ASSERT_TRUE(f.model->Forward(pool, base, {f.tokens.data() + p, 128}, LogitsMode::kNone,
                                   nullptr).ok());
      s.bases.push_back(base.TakeSnapshot());
      ASSERT_NE(s.bases.back(), nullptr);
    }
  }
  s.cache.Release();
  int64_t from = 0;
  for (auto it = s.bases.rbegin(); it != s.bases.rend(); ++it) {
    if ((*it)->num_tokens <= n0) {
      ASSERT_TRUE(s.cache.RestoreSnapshot(**it).ok());
      from = (*it)->num_tokens;
      break;
    }
  }
  if (from == n0) return;
  ASSERT_TRUE(f.model->Forward(pool, s.cache, {f.tokens.data() + from, static_cast<size_t>(n0 - from)},
                               LogitsMode::kNone, nullptr).ok());
}

// One speculative step on `s` (at n0): marks max_tokens = fed - n0, feeds the stream's tokens
// [n0, n) and then junk up to fed, in chunks of `chunks` tokens, and rolls back to n. Checks
// the accepted positions' logits of the verify step, the state against the reference at n,
// the whole pages at 128 and 256, and the logits of continuing with the stream's next two
// tokens (s ends at n + 2).
void SpeculateAndCheck(const Fixture& f, ThreadPool& pool, Seq& s, int64_t fed, int64_t n,
                       const std::vector<int64_t>& chunks) {
  const int64_t n0 = s.cache.num_tokens(), V = f.config().vocab_size;
  const std::string where = "mark " + std::to_string(n0) + ", fed " + std::to_string(fed) +
                            ", accepted " + std::to_string(n);
  ASSERT_TRUE(s.cache.BeginSpeculation(fed - n0).ok()) << where;
  std::vector<int32_t> verify;
  for (int64_t p = n0; p < fed; ++p) verify.push_back(p < n ? f.tokens[p] : f.junk[p]);
  std::vector<float> logits, part;
  int64_t done = 0;
  for (int64_t len : chunks) {
    ASSERT_TRUE(f.model->Forward(pool, s.cache, {verify.data() + done, static_cast<size_t>(len)},
                                 LogitsMode::kAll, &part).ok()) << where;
    logits.insert(logits.end(), part.begin(), part.end());
    done += len;
  }
  ASSERT_EQ(done, fed - n0);
  for (int64_t p = n0; p < n; ++p) {
    EXPECT_TRUE(SameFloats(logits.data() + (p - n0) * V, f.logits[p].data(), V))
        << where << ": logits of accepted position " << p;
  }
  ASSERT_TRUE(s.cache.RollbackTo(n).ok()) << where;
  EXPECT_FALSE(s.cache.speculating());
  EXPECT_TRUE(Matches(f, s, n)) << where;
  if (n == 128) EXPECT_EQ(ImageBytes(s.cache), f.image128) << where;
  if (n == 256) EXPECT_EQ(ImageBytes(s.cache), f.image256) << where;
  ASSERT_TRUE(f.model->Forward(pool, s.cache, {f.tokens.data() + n, 2}, LogitsMode::kAll,
                               &part).ok()) << where;
  for (int64_t j = 0; j < 2; ++j) {
    EXPECT_TRUE(SameFloats(part.data() + j * V, f.logits[n + j].data(), V))
        << where << ": logits of continuing at " << n + j;
  }
}

// Every accepted length of a verify step of 8 (7 drafts and the bonus token), marked at each
// position around the 128-token boundary (every CSA phase on both sides) and around 256.
TEST(V4Rollback, EveryAcceptedLengthAroundThe128Boundaries) {
  const Fixture& f = Tiny();
  ThreadPool pool(2);
  Seq s(f.config());
  for (int64_t n0 : {124, 125, 126, 127, 128, 129, 130, 131, 132, 253, 255, 256, 258}) {
    for (int64_t n = n0; n <= n0 + 8; ++n) {
      FeedPrefix(f, pool, s, n0);
      SpeculateAndCheck(f, pool, s, n0 + 8, n, {8});
    }
  }
}

// Every draft length (k = 1..7 drafts: verify steps of k + 1), in one chunk and in several,
// rolled back to every accepted length: marked on a multiple of 4 past the window's first
// wrap, just before and on the first 128-token boundary, and just past the second.
TEST(V4Rollback, EveryDraftLengthInOneChunkAndInSeveral) {
  const Fixture& f = Tiny();
  ThreadPool pool(2);
  Seq s(f.config());
  Rng rng(4);
  for (int64_t n0 : {40, 126, 128, 257}) {
    for (int64_t k = 1; k <= 7; ++k) {
      for (int64_t n = n0; n <= n0 + k + 1; ++n) {
        FeedPrefix(f, pool, s, n0);
        SpeculateAndCheck(f, pool, s, n0 + k + 1, n, {k + 1});
        if (k != 3 && k != 7) continue;
        // The same step in random chunks (at least two).
        std::vector<int64_t> chunks;
        for (int64_t left = k + 1; left > 0;) {
          const int64_t len = chunks.empty() ? 1 + static_cast<int64_t>(rng.Below(k))
                                             : 1 + static_cast<int64_t>(rng.Below(left));
          chunks.push_back(std::min(len, left));
          left -= chunks.back();
        }
        FeedPrefix(f, pool, s, n0);
        SpeculateAndCheck(f, pool, s, n0 + k + 1, n, chunks);
      }
    }
  }
}

// Speculative decoding from the first token to the end of the stream: each cycle marks the
// sequence where it is, verifies 1..8 tokens (in 1..3 chunks), and accepts a random prefix
// (all, none, or some; all is sometimes kept with EndSpeculation). After every cycle the state
// and the manager's accounting are the reference's, and accepted positions had its logits.
TEST(V4Rollback, RepeatedCyclesFollowTheReference) {
  const Fixture& f = Tiny();
  const int64_t V = f.config().vocab_size;
  ThreadPool pool(2);
  Seq s(f.config());
  Rng rng(17);
  std::vector<float> part;
  int cycles = 0;
  while (s.cache.num_tokens() < kLength - 8) {
    const int64_t p = s.cache.num_tokens();
    const int64_t len = 1 + static_cast<int64_t>(rng.Below(8));
    const int64_t n = p + static_cast<int64_t>(rng.Below(static_cast<uint64_t>(len + 1)));
    ASSERT_TRUE(s.cache.BeginSpeculation(len).ok()) << p;
    for (int64_t done = 0; done < len;) {
      const int64_t chunk = std::min<int64_t>(len - done, 1 + static_cast<int64_t>(rng.Below(4)));
      std::vector<int32_t> verify;
      for (int64_t q = p + done; q < p + done + chunk; ++q) {
        verify.push_back(q < n ? f.tokens[q] : f.junk[q]);
      }
      ASSERT_TRUE(f.model->Forward(pool, s.cache, verify, LogitsMode::kAll, &part).ok());
      for (int64_t q = p + done; q < std::min(n, p + done + chunk); ++q) {
        ASSERT_TRUE(SameFloats(part.data() + (q - p - done) * V, f.logits[q].data(), V))
            << "cycle " << cycles << ": logits of accepted position " << q;
      }
      done += chunk;
    }
    if (n == p + len && rng.Below(2) == 0) {
      s.cache.EndSpeculation();
    } else {
      ASSERT_TRUE(s.cache.RollbackTo(n).ok());
    }
    ASSERT_TRUE(Matches(f, s, n))
        << "cycle " << cycles << ": marked at " << p << ", fed " << len << ", accepted " << n;
    ++cycles;
  }
  EXPECT_GT(cycles, 40);
}

TEST(V4Rollback, ForwardPastTheMarkFailsAndNothingAdvances) {
  const Fixture& f = Tiny();
  ThreadPool pool(1);
  Seq s(f.config());
  FeedPrefix(f, pool, s, 130);
  std::vector<float> logits;
  auto feed = [&](int64_t from, int64_t n) {
    return f.model->Forward(pool, s.cache, {f.tokens.data() + from, static_cast<size_t>(n)},
                            LogitsMode::kLast, &logits);
  };
  EXPECT_EQ(s.cache.BeginSpeculation(0).code(), StatusCode::kInvalidArgument);
  const Status too_many = s.cache.BeginSpeculation(f.config().sliding_window + 1);
  EXPECT_EQ(too_many.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(too_many.message(), ::testing::HasSubstr("max_tokens 33, expected 1..32"));
  EXPECT_EQ(s.cache.RollbackTo(130).code(), StatusCode::kFailedPrecondition);

  ASSERT_TRUE(s.cache.BeginSpeculation(3).ok());
  EXPECT_EQ(s.cache.BeginSpeculation(3).code(), StatusCode::kFailedPrecondition);
  const Status past = feed(130, 4);
  EXPECT_EQ(past.code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(past.message(), ::testing::HasSubstr("passes the speculation mark at 130 + 3"));
  EXPECT_TRUE(Matches(f, s, 130));
  ASSERT_TRUE(feed(130, 2).ok());
  EXPECT_EQ(feed(132, 2).code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Matches(f, s, 132));
  ASSERT_TRUE(feed(132, 1).ok());
  EXPECT_EQ(s.cache.RollbackTo(129).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(s.cache.RollbackTo(134).code(), StatusCode::kOutOfRange);
  EXPECT_TRUE(s.cache.speculating());
  ASSERT_TRUE(s.cache.RollbackTo(131).ok());
  EXPECT_EQ(s.cache.RollbackTo(131).code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Matches(f, s, 131));
  // Unmarked again: any length goes.
  ASSERT_TRUE(feed(131, 40).ok());
  EXPECT_TRUE(Matches(f, s, 171));
}

// EndSpeculation keeps what the verify step appended, and lifts the limit.
TEST(V4Rollback, EndSpeculationKeepsEverything) {
  const Fixture& f = Tiny();
  ThreadPool pool(2);
  Seq s(f.config());
  FeedPrefix(f, pool, s, 126);
  ASSERT_TRUE(s.cache.BeginSpeculation(8).ok());
  ASSERT_TRUE(f.model->Forward(pool, s.cache, {f.tokens.data() + 126, 8}, LogitsMode::kNone,
                               nullptr).ok());
  s.cache.EndSpeculation();
  EXPECT_FALSE(s.cache.speculating());
  EXPECT_TRUE(Matches(f, s, 134));
  ASSERT_TRUE(f.model->Forward(pool, s.cache, {f.tokens.data() + 134, 30}, LogitsMode::kNone,
                               nullptr).ok());
  EXPECT_TRUE(Matches(f, s, 164));
}

// Pages a scheduler reserved ahead of the mark are released by a rollback like the verify
// step's own: the sequence then holds what n tokens need, no more.
TEST(V4Rollback, PagesReservedAheadAreReleased) {
  const Fixture& f = Tiny();
  ThreadPool pool(2);
  Seq s(f.config());
  FeedPrefix(f, pool, s, 250);
  ASSERT_TRUE(s.cache.Reserve(250 + 300).ok());
  ASSERT_TRUE(s.cache.BeginSpeculation(8).ok());
  const std::vector<int32_t> verify = {f.tokens[250], f.tokens[251], f.junk[252], f.junk[253]};
  ASSERT_TRUE(f.model->Forward(pool, s.cache, verify, LogitsMode::kNone, nullptr).ok());
  ASSERT_TRUE(s.cache.RollbackTo(252).ok());
  EXPECT_EQ(s.cache.reserved_tokens(), 252);
  EXPECT_TRUE(Matches(f, s, 252));
}

// A mark set before the first token (no pages, compressor states not bound yet), and rolling
// back to nothing.
TEST(V4Rollback, MarkOnAnEmptySequence) {
  const Fixture& f = Tiny();
  ThreadPool pool(1);
  Seq s(f.config());
  for (int64_t n : {0, 3, 5}) {
    ASSERT_TRUE(s.cache.BeginSpeculation(5).ok());
    const std::vector<int32_t> verify = {f.tokens[0], f.tokens[1], f.tokens[2], f.junk[3],
                                         f.junk[4]};
    ASSERT_TRUE(f.model->Forward(pool, s.cache, verify, LogitsMode::kNone, nullptr).ok());
    ASSERT_TRUE(s.cache.RollbackTo(std::min<int64_t>(n, 3)).ok());
    EXPECT_TRUE(Matches(f, s, std::min<int64_t>(n, 3))) << n;
    s.cache.Release();
  }
}

// Snapshots: refused while marked; Release and RestoreSnapshot end a mark.
TEST(V4Rollback, SnapshotsAndReleaseWhileMarked) {
  const Fixture& f = Tiny();
  ThreadPool pool(1);
  kv::KvManager manager(Layout(f.config()), kBudget);
  kv::V4SequenceCache donor(f.config(), &manager), other(f.config(), &manager);
  ASSERT_TRUE(f.model->Forward(pool, donor, {f.tokens.data(), 128}, LogitsMode::kNone,
                               nullptr).ok());
  ASSERT_TRUE(donor.BeginSpeculation(4).ok());
  EXPECT_EQ(donor.TakeSnapshot(), nullptr);
  donor.EndSpeculation();
  std::unique_ptr<kv::PrefixSnapshot> snap = donor.TakeSnapshot();
  ASSERT_NE(snap, nullptr);
  ASSERT_TRUE(donor.BeginSpeculation(4).ok());
  donor.Release();
  EXPECT_FALSE(donor.speculating());
  ASSERT_TRUE(other.BeginSpeculation(4).ok());  // marked at 0, nothing fed
  ASSERT_TRUE(other.RestoreSnapshot(*snap).ok());
  EXPECT_FALSE(other.speculating());
  ASSERT_TRUE(f.model->Forward(pool, other, {f.tokens.data() + 128, 10}, LogitsMode::kNone,
                               nullptr).ok());
  EXPECT_TRUE(SameState(f.digest[138], Digest(other, f.config()), "stale rows"));
}

// Through the runner (kv::SequenceState), in one batch with a sequence that is not
// speculating: the speculating one rolls back, the other is untouched, and a batch in which
// one item passes its mark fails as a whole without advancing anyone.
TEST(V4Rollback, SequenceStateInABatch) {
  const Fixture& f = Tiny();
  const int64_t V = f.config().vocab_size;
  ThreadPool pool(2);
  std::unique_ptr<runner::CausalLm> lm =
      runner::CreateCausalLm(f.config(), *f.ck.weights).value();
  kv::KvManager manager(lm->page_layout(), kBudget);
  std::unique_ptr<kv::SequenceState> a = lm->NewSequence(&manager), b = lm->NewSequence(&manager);
  EXPECT_TRUE(a->supports_rollback());
  ASSERT_TRUE(lm->Forward(pool, *a, {f.tokens.data(), 60}, LogitsMode::kNone, nullptr).ok());
  ASSERT_TRUE(lm->Forward(pool, *b, {f.tokens.data(), 90}, LogitsMode::kNone, nullptr).ok());
  ASSERT_TRUE(a->BeginSpeculation(4).ok());
  const std::vector<int32_t> verify = {f.tokens[60], f.tokens[61], f.junk[62], f.junk[63]};
  std::vector<float> la, lb;
  const std::vector<int32_t> five = {f.tokens[60], f.tokens[61], f.tokens[62], f.tokens[63],
                                     f.tokens[64]};
  std::vector<runner::CausalLm::BatchItem> batch = {
      {a.get(), five, LogitsMode::kAll, &la}, {b.get(), {f.tokens.data() + 90, 1}, LogitsMode::kLast, &lb}};
  EXPECT_EQ(lm->ForwardBatch(pool, batch).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(a->num_tokens(), 60);
  EXPECT_EQ(b->num_tokens(), 90);
  batch[0].tokens = verify;
  ASSERT_TRUE(lm->ForwardBatch(pool, batch).ok());
  EXPECT_TRUE(SameFloats(lb.data(), f.logits[90].data(), V));
  EXPECT_TRUE(SameFloats(la.data() + V, f.logits[61].data(), V));
  ASSERT_TRUE(a->RollbackTo(62).ok());
  EXPECT_EQ(a->Usage().total_bytes(), lm->page_layout().BytesAt(62));
  ASSERT_TRUE(lm->Forward(pool, *a, {f.tokens.data() + 62, 1}, LogitsMode::kLast, &la).ok());
  EXPECT_TRUE(SameFloats(la.data(), f.logits[62].data(), V));
}

}  // namespace
}  // namespace dsv4::v4
