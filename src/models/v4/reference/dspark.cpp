#include "models/v4/reference/dspark.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/bf16.h"
#include "core/dtype.h"
#include "models/v4/reference/attention.h"
#include "models/v4/reference/block.h"
#include "models/v4/reference/forward.h"
#include "models/v4/reference/numerics.h"
#include "models/v4/reference/weights.h"

namespace dsv4::v4::reference {

std::vector<float> TargetLayerMeans(const checkpoint::ModelConfig& c,
                                    std::span<const std::vector<float>* const> streams) {
  const int64_t D = c.hidden_size, hc = c.hc_mult;
  const int64_t T = static_cast<int64_t>(c.dspark.target_layer_ids.size());
  const int64_t P = static_cast<int64_t>(streams[0]->size()) / (hc * D);
  std::vector<float> h(static_cast<size_t>(P * T * D));
  for (int64_t p = 0; p < P; ++p) {
    for (int64_t j = 0; j < T; ++j) {
      const std::vector<float>& x = *streams[j];
      for (int64_t k = 0; k < D; ++k) {
        float sum = 0.0f;
        for (int64_t s = 0; s < hc; ++s) sum += x[(p * hc + s) * D + k];
        h[(p * T + j) * D + k] = RoundBf16(sum / static_cast<float>(hc));
      }
    }
  }
  return h;
}

Result<DsparkDraftResult> DsparkDraft(const checkpoint::ModelConfig& c,
                                      const checkpoint::TensorSource& w,
                                      std::span<const float> hidden, int32_t anchor) {
  DSV4_RETURN_IF_ERROR(CheckReferenceSupports(c));
  const int64_t D = c.hidden_size, hc = c.hc_mult, V = c.vocab_size, L = c.num_hidden_layers;
  const int64_t N = c.dspark.num_blocks, S = c.dspark.block_size, R = c.dspark.markov_rank;
  const int64_t T = static_cast<int64_t>(c.dspark.target_layer_ids.size());
  if (N == 0) return Status::InvalidArgument("DSpark reference: the config has no DSpark blocks");
  if (static_cast<int64_t>(hidden.size()) % (T * D) != 0) {
    return Status::InvalidArgument("DSpark reference: hidden rows of " + std::to_string(T * D) +
                                   " values, got " + std::to_string(hidden.size()) + " values");
  }
  const int64_t P = static_cast<int64_t>(hidden.size()) / (T * D);
  std::vector<int32_t> tokens(static_cast<size_t>(S), static_cast<int32_t>(c.dspark.noise_token_id));
  tokens[0] = anchor;
  DSV4_RETURN_IF_ERROR(CheckTokens(c, tokens));
  const float eps = static_cast<float>(c.rms_norm_eps);
  DSV4_ASSIGN_OR_RETURN(const std::vector<float> embed,
                        LoadFloats(w, "embed.weight", DType::kBF16, {V, D}));

  // Steps 1-2: main_x of the window positions [first, P).
  const int64_t first = std::max<int64_t>(0, P - c.sliding_window);
  DSV4_ASSIGN_OR_RETURN(const Linear main_proj, LoadDenseLinear(c, w, "mtp.0.main_proj", D, T * D));
  DSV4_ASSIGN_OR_RETURN(const std::vector<float> main_norm,
                        LoadFloats(w, "mtp.0.main_norm.weight", DType::kBF16, {D}));
  std::vector<float> main_x;
  for (int64_t t = first; t < P; ++t) {
    const std::vector<float> y =
        RmsNorm(Apply(main_proj, hidden.subspan(t * T * D, T * D)), main_norm, eps);
    main_x.insert(main_x.end(), y.begin(), y.end());
  }

  // Steps 4-5: the block input and the chained draft blocks.
  std::vector<float> x;
  for (int64_t i = 0; i < S; ++i) {
    for (int64_t j = 0; j < hc; ++j) {
      x.insert(x.end(), embed.begin() + tokens[i] * D, embed.begin() + (tokens[i] + 1) * D);
    }
  }
  const HcOptions o = HcOptionsOf(c);
  for (int64_t b = 0; b < N; ++b) {
    const AttentionFn attention = [&](const AttentionWeights& aw, std::span<const float> u) {
      const std::vector<float> context = WindowKeys(c, aw, main_x, P - first, first);
      return DsparkAttentionForward(c, aw, u, S, P, context);
    };
    DSV4_RETURN_IF_ERROR(RunBlockWith(c, w, "mtp." + std::to_string(b) + ".", L + b, tokens, o,
                                      attention, &x, nullptr));
  }

  // Step 6: the last block's head.
  const std::string last = "mtp." + std::to_string(N - 1) + ".";
  DsparkDraftResult r;
  std::vector<float> normed;
  DSV4_ASSIGN_OR_RETURN(r.base_logits, HeadLogits(c, w, last, x, o, &normed));

  // Steps 7-8: the Markov chain and the confidence head.
  DSV4_ASSIGN_OR_RETURN(const std::vector<float> w1,
                        LoadFloats(w, last + "markov_head.markov_w1.weight", DType::kBF16, {V, R}));
  DSV4_ASSIGN_OR_RETURN(const Linear w2,
                        LoadBf16Linear(w, last + "markov_head.markov_w2.weight", V, R));
  DSV4_ASSIGN_OR_RETURN(const Linear proj,
                        LoadBf16Linear(w, last + "confidence_head.proj.weight", 1, D + R));
  r.logits = r.base_logits;
  int32_t prev = anchor;
  for (int64_t i = 0; i < S; ++i) {
    const std::span<const float> e(w1.data() + static_cast<int64_t>(prev) * R, static_cast<size_t>(R));
    const std::vector<float> bias = Apply(w2, e);
    float* row = r.logits.data() + i * V;
    for (int64_t v = 0; v < V; ++v) row[v] += bias[v];
    prev = static_cast<int32_t>(std::max_element(row, row + V) - row);
    r.drafts.push_back(prev);
    std::vector<float> feature(normed.begin() + i * D, normed.begin() + (i + 1) * D);
    feature.insert(feature.end(), e.begin(), e.end());
    r.confidence.push_back(1.0f / (1.0f + std::exp(-Apply(proj, feature)[0])));
  }
  return r;
}

}  // namespace dsv4::v4::reference
