// The V4 fast path: determinism across prefill, chunking and decode (bit-identical logits),
// compressed-KV bookkeeping at the 4- and 128-token boundaries, and agreement with the plain
// reference forward.
#include "models/v4/model.h"

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "checkpoint/presets.h"
#include "checkpoint/tensor_store.h"
#include "core/rng.h"
#include "kv/page_layout.h"
#include "kernels/cpu/isa.h"
#include "models/v4/weights.h"
#include "testing/weight_generator.h"

namespace dsv4::v4 {
namespace {

// The built-in tiny model (window 32, index_topk 8, layers SWA/CSA/HCA/CSA/HCA) and one
// token sequence long enough to wrap the window, cross two 128-token boundaries and make
// the indexer drop entries.
struct Fixture {
  checkpoint::Checkpoint ck;
  std::unique_ptr<Model> model;
  std::vector<int32_t> tokens;
};

const Fixture& Tiny() {
  static const Fixture* f = [] {
    auto* fx = new Fixture;
    fx->ck = fixtures::BuiltinDefaultModel().value();
    fx->model = Model::Create(fx->ck.config, *fx->ck.weights).value();
    Rng rng(99);
    for (int i = 0; i < 300; ++i) {
      fx->tokens.push_back(static_cast<int32_t>(rng.Below(fx->ck.config.vocab_size)));
    }
    return fx;
  }();
  return *f;
}

// Logits of every position, feeding the sequence in chunks of `chunk` tokens (with `ws` as
// every call's scratch when given, else a fresh one per call).
std::vector<float> RunChunked(const Fixture& f, int64_t chunk, int threads = 2,
                              ForwardWorkspace* ws = nullptr) {
  ThreadPool pool(threads);
  kv::V4SequenceCache cache(f.ck.config);
  std::vector<float> all, part;
  const int64_t n = static_cast<int64_t>(f.tokens.size());
  for (int64_t s = 0; s < n; s += chunk) {
    const int64_t len = std::min(chunk, n - s);
    EXPECT_TRUE(f.model->Forward(pool, cache, {f.tokens.data() + s, static_cast<size_t>(len)},
                                 LogitsMode::kAll, &part, ws).ok());
    all.insert(all.end(), part.begin(), part.end());
  }
  EXPECT_EQ(cache.num_tokens(), n);
  return all;
}

TEST(V4Model, PrefillChunkedAndDecodeAreBitIdentical) {
  const Fixture& f = Tiny();
  const std::vector<float> one_shot = RunChunked(f, static_cast<int64_t>(f.tokens.size()));
  ASSERT_EQ(one_shot.size(), f.tokens.size() * f.ck.config.vocab_size);
  for (float v : one_shot) ASSERT_TRUE(std::isfinite(v));
  for (int64_t chunk : {1, 3, 4, 5, 127, 128, 129}) {
    const std::vector<float> chunked = RunChunked(f, chunk, chunk % 2 == 0 ? 1 : 2);
    ASSERT_EQ(chunked.size(), one_shot.size());
    EXPECT_EQ(std::memcmp(chunked.data(), one_shot.data(), one_shot.size() * sizeof(float)), 0)
        << "chunk " << chunk;
  }
}

TEST(V4Model, AWorkspaceKeptAcrossCallsChangesNoBit) {
  // One workspace through a long prefill (grown to its largest), then through chunks of
  // every size and decode of a new sequence: the same logits as fresh scratch per call.
  const Fixture& f = Tiny();
  ForwardWorkspace ws;
  const std::vector<float> one_shot = RunChunked(f, static_cast<int64_t>(f.tokens.size()), 2, &ws);
  for (int64_t chunk : {1, 5, 129}) {
    const std::vector<float> kept = RunChunked(f, chunk, 2, &ws);
    const std::vector<float> fresh = RunChunked(f, chunk, 2);
    ASSERT_EQ(kept.size(), one_shot.size());
    EXPECT_EQ(std::memcmp(kept.data(), fresh.data(), fresh.size() * sizeof(float)), 0)
        << "chunk " << chunk;
    EXPECT_EQ(std::memcmp(kept.data(), one_shot.data(), one_shot.size() * sizeof(float)), 0)
        << "chunk " << chunk;
  }
}

TEST(V4Model, CacheHoldsCompressedEntriesOnly) {
  const Fixture& f = Tiny();
  ThreadPool pool(2);
  kv::V4SequenceCache cache(f.ck.config);
  std::vector<float> logits;
  // Step across the boundaries one token at a time and check the entry counts.
  for (int64_t t = 0; t < 260; ++t) {
    ASSERT_TRUE(f.model->Forward(pool, cache, {f.tokens.data() + t, 1}, LogitsMode::kLast, &logits).ok());
    EXPECT_EQ(cache.NumEntries(1), (t + 1) / 4) << t;        // CSA
    EXPECT_EQ(cache.NumIndexerKeys(1), (t + 1) / 4) << t;
    EXPECT_EQ(cache.NumEntries(2), (t + 1) / 128) << t;      // HCA
    EXPECT_EQ(cache.NumEntries(0), 0);                       // SWA-only
  }
  // Pages held = what the page layout says a 260-token sequence needs, which covers the
  // exact byte formula of layout.h.
  const kv::PageLayout pl(f.ck.config, kv::DefaultKvFormats(checkpoint::Arch::kV4));
  const kv::KvFootprint exact =
      kv::ComputeKvFootprint(f.ck.config, kv::DefaultKvFormats(checkpoint::Arch::kV4), 260);
  EXPECT_EQ(cache.Usage().total_bytes(), pl.BytesAt(260));
  EXPECT_GE(pl.BytesAt(260), exact.total_bytes());
  EXPECT_EQ(kv::PageLayout(f.ck.config, kv::DefaultKvFormats(checkpoint::Arch::kV4), 1).BytesAt(260),
            exact.total_bytes());
}

TEST(V4Model, RejectsBadTokensWithoutTouchingTheCache) {
  const Fixture& f = Tiny();
  ThreadPool pool(1);
  kv::V4SequenceCache cache(f.ck.config);
  std::vector<float> logits;
  const int32_t bad[] = {1, 2, 512};
  Status s = f.model->Forward(pool, cache, bad, LogitsMode::kLast, &logits);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), ::testing::HasSubstr("token 512 at position 2"));
  EXPECT_EQ(cache.num_tokens(), 0);
}

}  // namespace
}  // namespace dsv4::v4

namespace dsv4::v4 {
namespace {

double Cosine(const float* a, const float* b, int64_t n) {
  double ab = 0, aa = 0, bb = 0;
  for (int64_t i = 0; i < n; ++i) ab += double(a[i]) * b[i], aa += double(a[i]) * a[i], bb += double(b[i]) * b[i];
  return ab / std::sqrt(aa * bb);
}

TEST(V4Model, Fp8AndBf16WeightVariantsAgree) {
  const Fixture& f = Tiny();
  checkpoint::ModelConfig c16 = f.ck.config;
  c16.weight_format = checkpoint::WeightFormat::kBf16;
  auto store = checkpoint::TensorStore::Create(
      "bf16", fixtures::GenerateWeights(c16, fixtures::kDefaultSeed).value()).value();
  auto m16 = Model::Create(c16, *store).value();
  ThreadPool pool(2);
  kv::V4SequenceCache cache(c16);
  std::vector<float> logits16;
  ASSERT_TRUE(m16->Forward(pool, cache, f.tokens, LogitsMode::kAll, &logits16).ok());
  const std::vector<float> logits8 = RunChunked(f, 300);
  const int64_t V = c16.vocab_size;
  double worst = 1.0;
  for (size_t t = 0; t < f.tokens.size(); ++t) {
    worst = std::min(worst, Cosine(logits8.data() + t * V, logits16.data() + t * V, V));
  }
  EXPECT_GE(worst, 0.999);
  EXPECT_LT(worst, 1.0);  // the FP8 activation quantisation really is exercised
}

// One NaN or Inf in any floating-point tensor the model reads (a BF16 norm, an F32 mHC
// parameter, an FP8 weight, an E8M0 block or FP4 expert scale, the BF16 head) refuses the load
// with DataLoss naming the tensor and the element; before the check, the NaN norm loaded and
// made every logit NaN. LoadOptions{.check_finite = false} loads it anyway.
TEST(V4Model, NonFiniteWeightsAreRefusedAtLoad) {
  const checkpoint::ModelConfig c = checkpoint::TinyV4Config();
  const std::vector<checkpoint::OwnedTensor> good =
      fixtures::GenerateWeights(c, fixtures::kDefaultSeed).value();
  struct Case {
    std::string tensor;
    size_t byte;                 // where the bad element's bytes go (little-endian)
    std::vector<uint8_t> bytes;
    std::string what;
  };
  const std::vector<Case> cases = {
      {"layers.1.attn_norm.weight", 2 * 5, {0xC0, 0x7F}, "(BF16 [256]) element 5 is NaN"},
      {"layers.0.hc_attn_base", 4 * 2, {0, 0, 0x80, 0x7F}, "(F32 [24]) element 2 is +Inf"},
      {"layers.2.attn.wq_a.weight", 7, {0x7F}, "element 7 is NaN (bits 0x7f)"},
      {"layers.3.attn.wq_a.scale", 1, {0xFF}, "element 1 is NaN (bits 0xff)"},
      {"layers.4.ffn.experts.2.w2.scale", 9, {0xFF}, "element 9 is NaN (bits 0xff)"},
      {"head.weight", 0, {0x80, 0xFF}, "element 0 is -Inf (bits 0xff80)"},
  };
  for (const Case& k : cases) {
    std::vector<checkpoint::OwnedTensor> tensors = good;
    bool found = false;
    for (checkpoint::OwnedTensor& t : tensors) {
      if (t.name != k.tensor) continue;
      std::memcpy(t.data.data() + k.byte, k.bytes.data(), k.bytes.size());
      found = true;
    }
    ASSERT_TRUE(found) << k.tensor;
    auto store = checkpoint::TensorStore::Create("bad", std::move(tensors)).value();
    Result<std::unique_ptr<Model>> m = Model::Create(c, *store);
    ASSERT_FALSE(m.ok()) << k.tensor;
    EXPECT_EQ(m.status().code(), StatusCode::kDataLoss);
    EXPECT_THAT(m.status().message(), ::testing::HasSubstr("bad: tensor '" + k.tensor + "' "));
    EXPECT_THAT(m.status().message(), ::testing::HasSubstr(k.what));
    EXPECT_TRUE(Model::Create(c, *store, {.check_finite = false}).ok()) << k.tensor;
  }
}

}  // namespace
}  // namespace dsv4::v4

#include "models/v4/reference/forward.h"

namespace dsv4::v4 {
namespace {

// The fast path against the plain whole-sequence reference (src/model/v4/reference), for
// both weight formats. The two share only the numeric primitives and the documented
// reduction orders; with those, they must agree bit for bit.
TEST(V4Model, FastPathMatchesTheReferenceForwardExactly) {
  const Fixture& f = Tiny();
  for (checkpoint::WeightFormat fmt : {checkpoint::WeightFormat::kFp8, checkpoint::WeightFormat::kBf16}) {
    checkpoint::ModelConfig c = f.ck.config;
    c.weight_format = fmt;
    auto store = checkpoint::TensorStore::Create(
        "w", fixtures::GenerateWeights(c, fixtures::kDefaultSeed).value()).value();
    auto fast = Model::Create(c, *store).value();
    // The FP8 checkpoint's wo_a runs as kFp8AsBf16 (FP8 bytes used as BF16), the BF16 one
    // as kBf16: both must match the reference's BF16 dequantisation.
    const auto loaded = LoadWeights(c, *store).value();
    EXPECT_EQ(loaded->layers[0].wo_a.kind, fmt == checkpoint::WeightFormat::kFp8
                                                ? kernels::LinearKind::kFp8AsBf16
                                                : kernels::LinearKind::kBf16);
    // FP4 experts run from the repacked tile layout where the AVX-512 BF16 path is active.
    const kernels::LinearWeight& w1 = loaded->layers[0].experts[0].w1;
    EXPECT_EQ(w1.fp4_tiles != nullptr, fmt == checkpoint::WeightFormat::kFp8 &&
                                           kernels::ActiveIsa() == kernels::Isa::kAvx512Bf16);
    ThreadPool pool(2);
    kv::V4SequenceCache cache(c);
    std::vector<float> a;
    ASSERT_TRUE(fast->Forward(pool, cache, f.tokens, LogitsMode::kAll, &a).ok());
    Result<std::vector<float>> b = reference::Forward(c, *store, f.tokens);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    ASSERT_EQ(a.size(), b->size());
    const int64_t V = c.vocab_size;
    int64_t differing = 0;
    double worst = 1.0;
    for (size_t t = 0; t < f.tokens.size(); ++t) {
      differing += std::memcmp(a.data() + t * V, b->data() + t * V, V * sizeof(float)) != 0;
      worst = std::min(worst, Cosine(a.data() + t * V, b->data() + t * V, V));
    }
    EXPECT_EQ(differing, 0) << "positions differ; worst cosine " << worst;
    EXPECT_GE(worst, 0.99999);
  }
}

}  // namespace
}  // namespace dsv4::v4

namespace dsv4::v4 {
namespace {

// Several sequences in one step (mixed prefill chunks and decode tokens) give each token the
// same logits as running that sequence alone.
TEST(V4Model, BatchOfSequencesIsBitIdenticalToSingleRuns) {
  const Fixture& f = Tiny();
  const std::vector<float> alone = RunChunked(f, 300);
  const int64_t V = f.ck.config.vocab_size;
  ThreadPool pool(2);
  // Three copies of the sequence at different offsets: A starts at 0, B after 50 tokens of A,
  // C after 120; each step feeds a chunk of 7 to whoever is prefilling and 1 to the others.
  std::vector<std::unique_ptr<kv::V4SequenceCache>> caches;
  for (int i = 0; i < 3; ++i) caches.push_back(std::make_unique<kv::V4SequenceCache>(f.ck.config));
  const int64_t start[3] = {0, 50, 120};
  std::vector<std::vector<float>> got(3);
  for (int64_t step = 0; step < 400; ++step) {
    std::vector<Model::BatchItem> batch;
    std::vector<std::vector<float>> out(3);
    for (int i = 0; i < 3; ++i) {
      const int64_t done = caches[i]->num_tokens();
      if (step < start[i] || done >= 300) continue;
      const int64_t len = std::min<int64_t>((i + step) % 2 ? 7 : 1, 300 - done);
      batch.push_back({caches[i].get(), {f.tokens.data() + done, static_cast<size_t>(len)},
                       LogitsMode::kAll, &out[i]});
    }
    if (batch.empty()) break;
    ASSERT_TRUE(f.model->ForwardBatch(pool, batch).ok());
    for (int i = 0; i < 3; ++i) got[i].insert(got[i].end(), out[i].begin(), out[i].end());
  }
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(got[i].size(), 300u * V) << i;
    EXPECT_EQ(std::memcmp(got[i].data(), alone.data(), alone.size() * sizeof(float)), 0) << i;
  }
}

}  // namespace
}  // namespace dsv4::v4
