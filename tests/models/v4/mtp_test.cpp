// The April MTP module's fast forward (models/v4/mtp.h, spec §11.3) on the tiny April-layout
// model: bit-identical to the plain reference (reference/mtp.h) for both weight formats, and
// across chunking and batching; the target's hidden rows it reads equal the reference's final
// streams.
#include "models/v4/mtp.h"

#include <cstring>
#include <memory>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "checkpoint/presets.h"
#include "checkpoint/tensor_store.h"
#include "core/rng.h"
#include "models/v4/reference/forward.h"
#include "models/v4/reference/mtp.h"
#include "testing/weight_generator.h"

namespace dsv4::v4 {
namespace {

using checkpoint::DraftFamily;
using checkpoint::ModelConfig;
using models::LogitsMode;

// The tiny model (window 32) with April MTP weights in format `fmt`, its module, and the
// target's hidden rows of one token sequence (fed in one call).
struct Tiny {
  explicit Tiny(checkpoint::WeightFormat fmt, int64_t num_tokens = 90) {
    c = checkpoint::WithDrafter(checkpoint::TinyV4Config(), DraftFamily::kMtp);
    c.weight_format = fmt;
    store = checkpoint::TensorStore::Create(
                "w", fixtures::GenerateWeights(c, fixtures::kDefaultSeed).value())
                .value();
    target = Model::Create(c, *store).value();
    draft = LoadDraftWeights(c, *store, DraftFamily::kMtp).value();
    mtp = std::make_unique<Mtp>(*target, *draft->mtp);
    ring_config = mtp->RingConfig(c.sliding_window);
    Rng rng(11);
    for (int64_t i = 0; i < num_tokens; ++i) {
      tokens.push_back(static_cast<int32_t>(rng.Below(static_cast<uint64_t>(c.vocab_size))));
    }
    ThreadPool pool(2);
    kv::V4SequenceCache cache(c);
    const Model::BatchItem item{&cache, tokens, LogitsMode::kNone, nullptr, &hidden};
    EXPECT_TRUE(target->ForwardBatch(pool, {&item, 1}).ok());
  }
  int64_t width() const { return c.hc_mult * c.hidden_size; }
  // The module over positions [0, n) (next tokens 1 .. n) in chunks of `chunk`: logits and
  // streams of every row.
  void RunChunked(int64_t n, int64_t chunk, std::vector<float>* logits,
                  std::vector<BF16>* streams) const {
    ThreadPool pool(2);
    kv::V4SequenceCache ring(ring_config);
    std::vector<float> l;
    std::vector<BF16> s;
    logits->clear();
    streams->clear();
    for (int64_t p = 0; p < n; p += chunk) {
      const int64_t len = std::min(chunk, n - p);
      const Mtp::BatchItem item{&ring,
                                {hidden.data() + p * width(), static_cast<size_t>(len * width())},
                                {tokens.data() + p + 1, static_cast<size_t>(len)},
                                LogitsMode::kAll, &l, &s};
      ASSERT_TRUE(mtp->ForwardBatch(pool, {&item, 1}).ok());
      logits->insert(logits->end(), l.begin(), l.end());
      streams->insert(streams->end(), s.begin(), s.end());
    }
    EXPECT_EQ(ring.num_tokens(), n);
  }

  ModelConfig c;
  std::unique_ptr<checkpoint::TensorStore> store;
  std::unique_ptr<Model> target;
  std::unique_ptr<DraftWeights> draft;
  std::unique_ptr<Mtp> mtp;
  ModelConfig ring_config;
  std::vector<int32_t> tokens;
  std::vector<BF16> hidden;  // BF16 [tokens, hc*D]
};

bool SameBits(const std::vector<BF16>& a, const std::vector<BF16>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(BF16)) == 0;
}
bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(V4Mtp, FastPathMatchesTheReferenceExactly) {
  for (checkpoint::WeightFormat fmt :
       {checkpoint::WeightFormat::kFp8, checkpoint::WeightFormat::kBf16}) {
    const Tiny f(fmt);
    const int64_t n = static_cast<int64_t>(f.tokens.size()) - 1;
    // The target's hidden rows are the reference's final streams (before HC_head).
    reference::ForwardTrace trace;
    ASSERT_TRUE(reference::Forward(f.c, *f.store, f.tokens, &trace).ok());
    const std::vector<float>& ref_hidden = trace.layers.back().streams;
    ASSERT_EQ(ref_hidden.size(), f.hidden.size());
    int64_t hidden_differ = 0;
    for (size_t i = 0; i < ref_hidden.size(); ++i) {
      hidden_differ += Bf16ToF32(f.hidden[i]) != ref_hidden[i];
    }
    EXPECT_EQ(hidden_differ, 0);

    std::vector<float> fast;
    std::vector<BF16> fast_streams;
    f.RunChunked(n, n, &fast, &fast_streams);
    std::vector<float> ref_streams;
    Result<std::vector<float>> ref = reference::MtpForward(
        f.c, *f.store, std::span<const float>(ref_hidden).first(n * f.width()),
        std::span<const int32_t>(f.tokens).subspan(1), &ref_streams);
    ASSERT_TRUE(ref.ok()) << ref.status().ToString();
    ASSERT_EQ(ref->size(), fast.size());
    const int64_t V = f.c.vocab_size;
    int64_t differing = 0;
    for (int64_t t = 0; t < n; ++t) {
      differing += std::memcmp(fast.data() + t * V, ref->data() + t * V, V * sizeof(float)) != 0;
    }
    EXPECT_EQ(differing, 0) << "of " << n << " positions (format " << static_cast<int>(fmt) << ")";
    ASSERT_EQ(ref_streams.size(), fast_streams.size());
    int64_t streams_differ = 0;
    for (size_t i = 0; i < ref_streams.size(); ++i) {
      streams_differ += Bf16ToF32(fast_streams[i]) != ref_streams[i];
    }
    EXPECT_EQ(streams_differ, 0);
  }
}

// Any chunking of the positions, and batching with another sequence, gives the same bits.
TEST(V4Mtp, ChunkedAndBatchedAreBitIdentical) {
  const Tiny f(checkpoint::WeightFormat::kFp8);
  const int64_t n = static_cast<int64_t>(f.tokens.size()) - 1;
  std::vector<float> whole, part;
  std::vector<BF16> whole_s, part_s;
  f.RunChunked(n, n, &whole, &whole_s);
  for (int64_t chunk : {1, 7, 33}) {
    f.RunChunked(n, chunk, &part, &part_s);
    EXPECT_TRUE(SameBits(part, whole)) << chunk;
    EXPECT_TRUE(SameBits(part_s, whole_s)) << chunk;
  }
  // Two rings in one call per step: A in chunks of 5, B (starting 20 positions later) one
  // position at a time.
  ThreadPool pool(2);
  kv::V4SequenceCache a(f.ring_config), b(f.ring_config);
  std::vector<float> got_a, got_b, la, lb;
  for (int64_t step = 0; a.num_tokens() < n || b.num_tokens() < n; ++step) {
    std::vector<Mtp::BatchItem> batch;
    la.clear();
    lb.clear();
    auto add = [&](kv::V4SequenceCache* ring, int64_t len, std::vector<float>* out) {
      const int64_t p = ring->num_tokens();
      len = std::min(len, n - p);
      if (len <= 0) return;
      batch.push_back({ring,
                       {f.hidden.data() + p * f.width(), static_cast<size_t>(len * f.width())},
                       {f.tokens.data() + p + 1, static_cast<size_t>(len)}, LogitsMode::kAll,
                       out});
    };
    add(&a, 5, &la);
    if (step >= 4) add(&b, 1, &lb);
    ASSERT_TRUE(f.mtp->ForwardBatch(pool, batch).ok());
    got_a.insert(got_a.end(), la.begin(), la.end());
    got_b.insert(got_b.end(), lb.begin(), lb.end());
  }
  EXPECT_TRUE(SameBits(got_a, whole));
  EXPECT_TRUE(SameBits(got_b, whole));
  // kLast gives the last row of kAll; streams follow the logits' rows.
  kv::V4SequenceCache last(f.ring_config);
  std::vector<float> l;
  std::vector<BF16> s;
  const Mtp::BatchItem item{&last, {f.hidden.data(), static_cast<size_t>(n * f.width())},
                            {f.tokens.data() + 1, static_cast<size_t>(n)}, LogitsMode::kLast,
                            &l, &s};
  ASSERT_TRUE(f.mtp->ForwardBatch(pool, {&item, 1}).ok());
  const int64_t V = f.c.vocab_size;
  EXPECT_TRUE(SameBits(l, std::vector<float>(whole.end() - V, whole.end())));
  EXPECT_TRUE(SameBits(s, std::vector<BF16>(whole_s.end() - f.width(), whole_s.end())));
}

TEST(V4Mtp, BadInputLeavesTheRingUntouched) {
  const Tiny f(checkpoint::WeightFormat::kFp8, 8);
  ThreadPool pool(2);
  kv::V4SequenceCache ring(f.ring_config);
  std::vector<float> l;
  // Three next tokens with two hidden rows.
  const Mtp::BatchItem short_hidden{&ring, {f.hidden.data(), static_cast<size_t>(2 * f.width())},
                                    {f.tokens.data() + 1, 3}, LogitsMode::kAll, &l};
  Status s = f.mtp->ForwardBatch(pool, {&short_hidden, 1});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), ::testing::HasSubstr("3 next tokens need 3 hidden rows"));
  const int32_t bad[2] = {1, static_cast<int32_t>(f.c.vocab_size)};
  const Mtp::BatchItem bad_token{&ring, {f.hidden.data(), static_cast<size_t>(2 * f.width())},
                                 bad, LogitsMode::kAll, &l};
  EXPECT_EQ(f.mtp->ForwardBatch(pool, {&bad_token, 1}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ring.num_tokens(), 0);
}

}  // namespace
}  // namespace dsv4::v4
