// End-to-end checks of the plain reference forward on the built-in tiny model
// (TinyV4Config: SWA, CSA, HCA, CSA, HCA; window 32; index_topk 8; 2 hash layers).
#include "models/v4/reference/forward.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "core/bf16.h"
#include "core/rng.h"
#include "checkpoint/presets.h"
#include "checkpoint/tensor_store.h"
#include "models/v4/reference/moe.h"
#include "testing/weight_generator.h"

namespace dsv4::v4::reference {
namespace {

// 300 tokens: wraps the 32-slot window many times, crosses two 128 boundaries (HCA entries 0
// and 1) and gives up to 75 CSA entries, far more than index_topk = 8.
constexpr int64_t kNumTokens = 300;

std::vector<int32_t> RandomTokens(int64_t n, int64_t vocab, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int32_t& v : t) v = static_cast<int32_t>(rng.Below(static_cast<uint64_t>(vocab)));
  return t;
}

double Cosine(const float* a, const float* b, int64_t n) {
  double ab = 0, aa = 0, bb = 0;
  for (int64_t i = 0; i < n; ++i) {
    ab += static_cast<double>(a[i]) * b[i];
    aa += static_cast<double>(a[i]) * a[i];
    bb += static_cast<double>(b[i]) * b[i];
  }
  return ab / std::sqrt(aa * bb);
}

class ReferenceForwardTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    Result<checkpoint::Checkpoint> m = fixtures::BuiltinDefaultModel();
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    model_ = new checkpoint::Checkpoint(std::move(m).value());
    tokens_ = new std::vector<int32_t>(RandomTokens(kNumTokens, model_->config.vocab_size, 7));
    trace_ = new ForwardTrace;
    const auto start = std::chrono::steady_clock::now();
    Result<std::vector<float>> logits = Forward(model_->config, *model_->weights, *tokens_, trace_);
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ASSERT_TRUE(logits.ok()) << logits.status().ToString();
    std::printf("reference forward, %lld tokens: %.2f s\n", static_cast<long long>(kNumTokens),
                secs);
    logits_ = new std::vector<float>(std::move(logits).value());
  }
  static void TearDownTestSuite() {
    delete trace_;
    trace_ = nullptr;
    delete logits_;
    delete tokens_;
    delete model_;
    logits_ = nullptr;
    tokens_ = nullptr;
    model_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(logits_, nullptr) << "the shared forward failed"; }

  static const checkpoint::ModelConfig& config() { return model_->config; }
  static int64_t vocab() { return model_->config.vocab_size; }

  static checkpoint::Checkpoint* model_;
  static std::vector<int32_t>* tokens_;
  static std::vector<float>* logits_;
  static ForwardTrace* trace_;
};

checkpoint::Checkpoint* ReferenceForwardTest::model_ = nullptr;
std::vector<int32_t>* ReferenceForwardTest::tokens_ = nullptr;
std::vector<float>* ReferenceForwardTest::logits_ = nullptr;
ForwardTrace* ReferenceForwardTest::trace_ = nullptr;

TEST_F(ReferenceForwardTest, LogitsAreFiniteAndVary) {
  ASSERT_EQ(static_cast<int64_t>(logits_->size()), kNumTokens * vocab());
  for (float v : *logits_) ASSERT_TRUE(std::isfinite(v));
  // Not degenerate: rows differ and each row has spread.
  for (int64_t t = 0; t < kNumTokens; t += 37) {
    const float* row = logits_->data() + t * vocab();
    const auto [lo, hi] = std::minmax_element(row, row + vocab());
    EXPECT_GT(*hi - *lo, 1.0f) << "row " << t;
  }
  EXPECT_LT(Cosine(logits_->data(), logits_->data() + vocab(), vocab()), 0.9999);
}

TEST_F(ReferenceForwardTest, RowDependsOnlyOnItsPrefix) {
  // Causality: change every token after `cut`; rows 0..cut must not move by a single bit.
  constexpr int64_t kCut = 150;
  std::vector<int32_t> changed = *tokens_;
  for (int64_t t = kCut + 1; t < kNumTokens; ++t) {
    changed[t] = static_cast<int32_t>((changed[t] + 1 + t) % vocab());
  }
  Result<std::vector<float>> other = Forward(config(), *model_->weights, changed);
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  for (int64_t i = 0; i < (kCut + 1) * vocab(); ++i) {
    ASSERT_EQ((*logits_)[i], (*other)[i]) << "row " << i / vocab();
  }
  int64_t differing_rows = 0;
  for (int64_t t = kCut + 1; t < kNumTokens; ++t) {
    differing_rows +=
        !std::equal(logits_->begin() + t * vocab(), logits_->begin() + (t + 1) * vocab(),
                    other->begin() + t * vocab());
  }
  EXPECT_EQ(differing_rows, kNumTokens - kCut - 1);
}

TEST_F(ReferenceForwardTest, ShorterSequenceGivesTheSameRows) {
  // The prefix forward sees fewer compressed entries (⌊T/m⌋) and a shorter KV list; the rows it
  // shares with the full forward must still be bit-identical. 131 crosses the first 128 entry.
  constexpr int64_t kPrefix = 131;
  std::span<const int32_t> prefix(tokens_->data(), kPrefix);
  Result<std::vector<float>> short_logits = Forward(config(), *model_->weights, prefix);
  ASSERT_TRUE(short_logits.ok()) << short_logits.status().ToString();
  ASSERT_EQ(static_cast<int64_t>(short_logits->size()), kPrefix * vocab());
  for (int64_t i = 0; i < kPrefix * vocab(); ++i) {
    ASSERT_EQ((*logits_)[i], (*short_logits)[i]) << "row " << i / vocab();
  }
}

TEST_F(ReferenceForwardTest, Bf16WeightsGiveNearlyTheSameLogits) {
  // The kBf16 checkpoint holds the exact dequantised values of the FP8/FP4 one; only the FP8
  // activation quantisation of the linears differs (≈2.7% relative RMS error per quantised
  // input, so one attention sublayer's output alone is only at cosine ≈ 0.998). It also flips
  // discrete decisions (indexer top-k over BF16 scores, expert routing). The logits stay
  // within the cosine ≥ 0.999 per position only because the generated tiny model
  // damps its residual branches (weight_generator.cpp); positions where no decision flipped
  // are much closer, which is checked separately.
  checkpoint::ModelConfig bf16_config = config();
  bf16_config.weight_format = checkpoint::WeightFormat::kBf16;
  Result<std::vector<checkpoint::OwnedTensor>> tensors =
      fixtures::GenerateWeights(bf16_config, fixtures::kDefaultSeed);
  ASSERT_TRUE(tensors.ok()) << tensors.status().ToString();
  Result<std::unique_ptr<checkpoint::TensorStore>> store =
      checkpoint::TensorStore::Create("bf16 tiny", std::move(tensors).value());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  ForwardTrace bf16_trace;
  Result<std::vector<float>> bf16_logits = Forward(bf16_config, **store, *tokens_, &bf16_trace);
  ASSERT_TRUE(bf16_logits.ok()) << bf16_logits.status().ToString();

  double min_cos = 1.0, min_steady_cos = 1.0, sum_cos = 0.0;
  int64_t steady = 0, identical_rows = 0;
  for (int64_t t = 0; t < kNumTokens; ++t) {
    bool flipped = false;
    for (size_t l = 0; l < trace_->layers.size(); ++l) {
      std::vector<int64_t> a = trace_->layers[l].experts[t], b = bf16_trace.layers[l].experts[t];
      std::sort(a.begin(), a.end());
      std::sort(b.begin(), b.end());
      flipped |= a != b;
      flipped |= trace_->layers[l].compressed[t] != bf16_trace.layers[l].compressed[t];
    }
    const double cos =
        Cosine(logits_->data() + t * vocab(), bf16_logits->data() + t * vocab(), vocab());
    EXPECT_GE(cos, 0.999) << "position " << t;
    if (!flipped) {
      EXPECT_GE(cos, 0.9998) << "position " << t << " (no routing or top-k flip)";
      min_steady_cos = std::min(min_steady_cos, cos);
      ++steady;
    }
    min_cos = std::min(min_cos, cos);
    sum_cos += cos;
    identical_rows +=
        std::equal(logits_->begin() + t * vocab(), logits_->begin() + (t + 1) * vocab(),
                   bf16_logits->begin() + t * vocab());
  }
  std::printf(
      "FP8 vs BF16 weights: mean cosine %.5f, min %.5f; %lld positions without a "
      "flip, min %.5f\n",
      sum_cos / kNumTokens, min_cos, static_cast<long long>(steady), min_steady_cos);
  EXPECT_GE(sum_cos / kNumTokens, 0.9998);
  EXPECT_GE(steady, 20);  // enough positions for the tight bound to mean something
  // The variants really differ (activation quantisation is on in one, off in the other).
  EXPECT_LT(identical_rows, kNumTokens);
}

TEST_F(ReferenceForwardTest, AttendsOnlyToVisibleEntries) {
  // §7.7 / §9: CSA takes min(index_topk, ⌊(t+1)/4⌋) distinct visible entries, HCA all
  // ⌊(t+1)/128⌋, SWA-only none.
  ASSERT_EQ(static_cast<int64_t>(trace_->layers.size()), config().num_hidden_layers);
  int64_t dropped = 0;
  for (int64_t l = 0; l < config().num_hidden_layers; ++l) {
    const int64_t m = config().ratio(l);
    for (int64_t t = 0; t < kNumTokens; ++t) {
      const std::vector<int64_t>& sel = trace_->layers[l].compressed[t];
      if (m == 0) {
        EXPECT_TRUE(sel.empty());
        continue;
      }
      const int64_t visible = (t + 1) / m;
      const int64_t want = m == 4 ? std::min(config().index_topk, visible) : visible;
      ASSERT_EQ(static_cast<int64_t>(sel.size()), want) << "layer " << l << " t " << t;
      EXPECT_TRUE(std::is_sorted(sel.begin(), sel.end()));
      EXPECT_EQ(std::adjacent_find(sel.begin(), sel.end()), sel.end());
      for (int64_t i : sel) EXPECT_LT(i, visible) << "layer " << l << " t " << t;
      dropped += visible - want;
    }
  }
  EXPECT_GT(dropped, 0);  // the indexer really dropped entries
}

TEST_F(ReferenceForwardTest, SlidingWindowCoversTheLastWPositions) {
  // Layer 0 is SWA-only and its MoE is per token, so its output at t depends on tokens
  // max(0, t−W+1)..t only (§9): changing token s moves exactly positions s..s+W−1.
  ASSERT_EQ(config().ratio(0), 0);
  const int64_t window = config().sliding_window;
  constexpr int64_t kTokens = 90, kChanged = 40;
  std::vector<int32_t> tokens(tokens_->begin(), tokens_->begin() + kTokens);
  ForwardTrace before, after;
  ASSERT_TRUE(Forward(config(), *model_->weights, tokens, &before).ok());
  tokens[kChanged] = (tokens[kChanged] + 1) % static_cast<int32_t>(vocab());
  ASSERT_TRUE(Forward(config(), *model_->weights, tokens, &after).ok());
  const int64_t width = config().hc_mult * config().hidden_size;
  for (int64_t t = 0; t < kTokens; ++t) {
    const bool moved = !std::equal(before.layers[0].streams.begin() + t * width,
                                   before.layers[0].streams.begin() + (t + 1) * width,
                                   after.layers[0].streams.begin() + t * width);
    EXPECT_EQ(moved, kChanged <= t && t < kChanged + window) << "position " << t;
  }
}

TEST_F(ReferenceForwardTest, SwaAttentionDependsOnRelativePositionsOnly) {
  // With RoPE on q and k and the inverse RoPE on the output (§6.4), the SWA-only layer's output
  // at t is a function of the window's tokens at their offsets from t. A token sequence of
  // period P therefore repeats it every P positions once the window is full, up to the BF16
  // rounding of the rotated values. Skipping or mis-signing the de-rotation breaks this.
  ASSERT_EQ(config().ratio(0), 0);
  constexpr int64_t kPeriod = 7, kTokens = 100;
  std::vector<int32_t> tokens(kTokens);
  for (int64_t t = 0; t < kTokens; ++t) tokens[t] = (*tokens_)[t % kPeriod];
  ForwardTrace trace;
  ASSERT_TRUE(Forward(config(), *model_->weights, tokens, &trace).ok());
  const int64_t dim = config().hidden_size;
  const float* a = trace.layers[0].attn_out.data();
  const int64_t first = config().sliding_window - 1;  // first position with a full window
  double min_cos = 1.0;
  for (int64_t t = first + kPeriod; t < kTokens; ++t) {
    min_cos =
        std::min(min_cos, Cosine(a + first * dim + (t - first) % kPeriod * dim, a + t * dim, dim));
  }
  std::printf("SWA output repeat cosine min %.6f\n", min_cos);
  EXPECT_GE(min_cos, 0.9995);
}

TEST_F(ReferenceForwardTest, HashLayersRouteByTokenId) {
  const checkpoint::TensorSource& w = *model_->weights;
  const int64_t k = config().num_experts_per_tok;
  for (int64_t l = 0; l < config().num_hidden_layers; ++l) {
    const LayerTrace& lt = trace_->layers[l];
    for (int64_t t = 0; t < kNumTokens; ++t) {
      ASSERT_EQ(static_cast<int64_t>(lt.experts[t].size()), k);
      float sum = 0.0f;
      for (float g : lt.expert_weights[t]) sum += g;
      // Renormalised over the selection, then × routed_scaling_factor (§10.1 step 4).
      EXPECT_NEAR(sum, config().routed_scaling_factor, 1e-5) << "layer " << l << " t " << t;
    }
    if (!config().is_hash_layer(l)) continue;
    Result<checkpoint::TensorView> table = w.Get("layers." + std::to_string(l) + ".ffn.gate.tid2eid");
    ASSERT_TRUE(table.ok());
    for (int64_t t = 0; t < kNumTokens; ++t) {
      for (int64_t j = 0; j < k; ++j) {
        int64_t expected;
        std::memcpy(&expected, table->bytes.data() + ((*tokens_)[t] * k + j) * 8, 8);
        EXPECT_EQ(lt.experts[t][j], expected) << "layer " << l << " t " << t;
      }
    }
  }
}

TEST_F(ReferenceForwardTest, SharedExpertIsClampedLikeTheRoutedExperts) {
  // Spec §10.3 revision note: the current reference clamps the shared expert's SwiGLU at
  // swiglu_limit, like the routed experts'. The generated shared expert is hot
  // (weight_generator.cpp), so ordinary tokens push some of its pre-activations past the
  // limit; each layer's MoE output must then be routed + clamped shared, which differs from
  // routed + unclamped shared. (V4Model.FastPathMatchesTheReferenceForwardExactly holds the
  // fast path to the same numbers.)
  const float limit = static_cast<float>(config().swiglu_limit);
  const int64_t dim = config().hidden_size;
  ASSERT_GT(limit, 0.0f);
  for (int64_t l = 0; l < config().num_hidden_layers; ++l) {
    const LayerTrace& lt = trace_->layers[l];
    ASSERT_EQ(static_cast<int64_t>(lt.ffn_in.size()), kNumTokens * dim);
    Result<MoeWeights> mw = LoadMoe(config(), *model_->weights, LayerPrefix(l), l);
    ASSERT_TRUE(mw.ok()) << mw.status().ToString();
    ASSERT_TRUE(mw->has_shared);
    int64_t hot = 0, changed = 0;
    for (int64_t t = 0; t < kNumTokens; ++t) {
      const std::span<const float> x(lt.ffn_in.data() + t * dim, static_cast<size_t>(dim));
      const std::vector<float> a = Apply(mw->shared.w1, x), b = Apply(mw->shared.w3, x);
      bool above = false;
      for (size_t i = 0; i < a.size(); ++i) above |= a[i] > limit || std::fabs(b[i]) > limit;
      hot += above;
      // Routed experts in ascending id (FP32 sum), then the shared expert, then BF16.
      std::vector<int64_t> order(lt.experts[t].size());
      std::iota(order.begin(), order.end(), 0);
      std::sort(order.begin(), order.end(),
                [&](int64_t i, int64_t j) { return lt.experts[t][i] < lt.experts[t][j]; });
      std::vector<float> routed(static_cast<size_t>(dim), 0.0f);
      for (int64_t j : order) {
        const std::vector<float> y =
            ExpertForward(mw->experts[lt.experts[t][j]], x, lt.expert_weights[t][j], limit);
        for (int64_t d = 0; d < dim; ++d) routed[d] += y[d];
      }
      auto combined = [&](float shared_limit) {
        const std::vector<float> y = ExpertForward(mw->shared, x, 1.0f, shared_limit);
        std::vector<float> out(static_cast<size_t>(dim));
        for (int64_t d = 0; d < dim; ++d) out[d] = RoundBf16(routed[d] + y[d]);
        return out;
      };
      const std::vector<float> clamped = combined(limit);
      ASSERT_TRUE(std::equal(clamped.begin(), clamped.end(), lt.ffn_out.begin() + t * dim))
          << "layer " << l << " position " << t;
      changed += clamped != combined(/*no clamp*/ 0.0f);
    }
    std::printf("layer %lld: shared expert above the limit at %lld of %lld positions, clamp "
                "changes the MoE output at %lld\n",
                static_cast<long long>(l), static_cast<long long>(hot),
                static_cast<long long>(kNumTokens), static_cast<long long>(changed));
    EXPECT_GE(hot, kNumTokens / 2) << "layer " << l << ": the shared expert is not hot";
    EXPECT_GE(changed, hot * 9 / 10) << "layer " << l;
  }
}

TEST_F(ReferenceForwardTest, TopTokensOfAShortPrompt) {
  // Printed for cross-checking the fast path by hand; asserts only the basics.
  std::vector<int32_t> prompt(10);
  for (int32_t i = 0; i < 10; ++i) prompt[i] = i;
  Result<std::vector<float>> logits = Forward(config(), *model_->weights, prompt);
  ASSERT_TRUE(logits.ok()) << logits.status().ToString();
  std::string line;
  for (int64_t t = 0; t < 10; ++t) {
    const float* row = logits->data() + t * vocab();
    const int64_t top = std::max_element(row, row + vocab()) - row;
    ASSERT_GE(top, 0);
    ASSERT_LT(top, vocab());
    line += (t ? " " : "") + std::to_string(top) + "(" + std::to_string(row[top]) + ")";
  }
  std::printf("top-1 after tokens 0..9: %s\n", line.c_str());
}

TEST_F(ReferenceForwardTest, RejectsBadTokenIds) {
  for (int32_t bad : {-1, static_cast<int32_t>(vocab()), 1 << 30}) {
    const std::vector<int32_t> tokens = {3, 4, bad, 5};
    Result<std::vector<float>> r = Forward(config(), *model_->weights, tokens);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("position 2"), std::string::npos) << r.status().ToString();
    EXPECT_NE(r.status().message().find(std::to_string(bad)), std::string::npos)
        << r.status().ToString();
  }
}

TEST_F(ReferenceForwardTest, EmptySequenceGivesNoLogits) {
  Result<std::vector<float>> r = Forward(config(), *model_->weights, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->empty());
}

TEST_F(ReferenceForwardTest, MissingTensorIsReported) {
  auto* store = dynamic_cast<const checkpoint::TensorStore*>(model_->weights.get());
  ASSERT_NE(store, nullptr);
  std::vector<checkpoint::OwnedTensor> tensors;
  for (const checkpoint::OwnedTensor& t : store->tensors()) {
    if (t.name != "layers.3.attn.indexer.wq_b.scale") tensors.push_back(t);
  }
  Result<std::unique_ptr<checkpoint::TensorStore>> partial =
      checkpoint::TensorStore::Create("partial", std::move(tensors));
  ASSERT_TRUE(partial.ok());
  const std::vector<int32_t> tokens = {1, 2, 3};
  Result<std::vector<float>> r = Forward(config(), **partial, tokens);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("layers.3.attn.indexer.wq_b.scale"), std::string::npos)
      << r.status().ToString();
}

TEST(ReferenceForwardConfigTest, RejectsUnsupportedConfigs) {
  checkpoint::ModelConfig c = checkpoint::TinyV4Config();
  EXPECT_TRUE(CheckReferenceSupports(c).ok());
  checkpoint::ModelConfig v32 = checkpoint::TinyV32Config();
  EXPECT_EQ(CheckReferenceSupports(v32).code(), StatusCode::kUnimplemented);
  checkpoint::ModelConfig sigmoid = c;
  sigmoid.scoring_func = "sigmoid";
  EXPECT_EQ(CheckReferenceSupports(sigmoid).code(), StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace dsv4::v4::reference
