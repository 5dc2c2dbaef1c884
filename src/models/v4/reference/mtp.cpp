#include "models/v4/reference/mtp.h"

#include <string>

#include "core/dtype.h"
#include "models/v4/reference/block.h"
#include "models/v4/reference/forward.h"
#include "models/v4/reference/numerics.h"
#include "models/v4/reference/weights.h"

namespace dsv4::v4::reference {

Result<std::vector<float>> MtpForward(const checkpoint::ModelConfig& c,
                                      const checkpoint::TensorSource& w,
                                      std::span<const float> hidden,
                                      std::span<const int32_t> next_tokens,
                                      std::vector<float>* streams) {
  DSV4_RETURN_IF_ERROR(CheckReferenceSupports(c));
  DSV4_RETURN_IF_ERROR(CheckTokens(c, next_tokens));
  const int64_t num_tokens = static_cast<int64_t>(next_tokens.size());
  const int64_t dim = c.hidden_size, hc = c.hc_mult, vocab = c.vocab_size;
  if (static_cast<int64_t>(hidden.size()) != num_tokens * hc * dim) {
    return Status::InvalidArgument("MTP reference: " + std::to_string(num_tokens) +
                                   " positions need " + std::to_string(num_tokens * hc * dim) +
                                   " hidden values, got " + std::to_string(hidden.size()));
  }
  const std::string p = "mtp.0.";
  const float eps = static_cast<float>(c.rms_norm_eps);
  DSV4_ASSIGN_OR_RETURN(const std::vector<float> embed,
                        LoadFloats(w, "embed.weight", DType::kBF16, {vocab, dim}));
  DSV4_ASSIGN_OR_RETURN(const std::vector<float> enorm,
                        LoadFloats(w, p + "enorm.weight", DType::kBF16, {dim}));
  DSV4_ASSIGN_OR_RETURN(const std::vector<float> hnorm,
                        LoadFloats(w, p + "hnorm.weight", DType::kBF16, {dim}));
  DSV4_ASSIGN_OR_RETURN(const Linear e_proj, LoadDenseLinear(c, w, p + "e_proj", dim, dim));
  DSV4_ASSIGN_OR_RETURN(const Linear h_proj, LoadDenseLinear(c, w, p + "h_proj", dim, dim));

  // §11.3 steps 1-2: the block's input streams, BF16 values [T, hc, D].
  std::vector<float> x(static_cast<size_t>(num_tokens * hc * dim));
  for (int64_t t = 0; t < num_tokens; ++t) {
    const std::span<const float> e(embed.data() + next_tokens[t] * dim, static_cast<size_t>(dim));
    const std::vector<float> ep = Apply(e_proj, RmsNorm(e, enorm, eps));
    for (int64_t j = 0; j < hc; ++j) {
      const int64_t row = (t * hc + j) * dim;
      const std::vector<float> hp =
          Apply(h_proj, RmsNorm(hidden.subspan(row, dim), hnorm, eps));
      for (int64_t k = 0; k < dim; ++k) x[row + k] = ep[k] + hp[k];
    }
  }
  RoundToBf16(x);
  // Step 3: one block, layer id L (attention type from compress_ratios[L]: SWA-only).
  const HcOptions o = HcOptionsOf(c);
  DSV4_RETURN_IF_ERROR(RunBlock(c, w, p, c.num_hidden_layers, next_tokens, o, &x, nullptr));
  if (streams != nullptr) *streams = x;
  // Step 4: the module's HC_head and norm, the shared head.
  return HeadLogits(c, w, p, x, o);
}

}  // namespace dsv4::v4::reference
