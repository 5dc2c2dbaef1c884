#include "models/v4/draft_weights.h"

#include <string>

namespace dsv4::v4 {
namespace {

using ::dsv4::DType;
using checkpoint::DraftFamily;
using checkpoint::ModelConfig;
using models::LinearFormat;
using models::LinearLoader;

Result<MtpWeights> LoadMtp(LinearLoader& l, const ModelConfig& c) {
  const int64_t D = c.hidden_size;
  const std::string p = "mtp.0.";
  MtpWeights m;
  DSV4_ASSIGN_OR_RETURN(m.block, LoadBlock(l, c, p, c.num_hidden_layers));
  DSV4_ASSIGN_OR_RETURN(m.e_proj, l.Linear(p + "e_proj", DenseFormats(c), D, D));
  DSV4_ASSIGN_OR_RETURN(m.h_proj, l.Linear(p + "h_proj", DenseFormats(c), D, D));
  DSV4_ASSIGN_OR_RETURN(m.enorm, l.F32(p + "enorm.weight", DType::kBF16, {D}));
  DSV4_ASSIGN_OR_RETURN(m.hnorm, l.F32(p + "hnorm.weight", DType::kBF16, {D}));
  DSV4_ASSIGN_OR_RETURN(m.norm, l.F32(p + "norm.weight", DType::kBF16, {D}));
  DSV4_ASSIGN_OR_RETURN(m.hc_head, LoadHcHead(l, c, p));
  return m;
}

Result<DsparkWeights> LoadDspark(LinearLoader& l, const ModelConfig& c) {
  const int64_t D = c.hidden_size, V = c.vocab_size, L = c.num_hidden_layers;
  const int64_t N = c.dspark.num_blocks, R = c.dspark.markov_rank;
  const int64_t T = static_cast<int64_t>(c.dspark.target_layer_ids.size());
  DsparkWeights d;
  for (int64_t b = 0; b < N; ++b) {
    DSV4_ASSIGN_OR_RETURN(LayerWeights w, LoadBlock(l, c, "mtp." + std::to_string(b) + ".", L + b));
    d.blocks.push_back(std::move(w));
  }
  DSV4_ASSIGN_OR_RETURN(d.main_proj, l.Linear("mtp.0.main_proj", DenseFormats(c), D, T * D));
  DSV4_ASSIGN_OR_RETURN(d.main_norm, l.F32("mtp.0.main_norm.weight", DType::kBF16, {D}));
  const std::string last = "mtp." + std::to_string(N - 1) + ".";
  DSV4_ASSIGN_OR_RETURN(d.norm, l.F32(last + "norm.weight", DType::kBF16, {D}));
  DSV4_ASSIGN_OR_RETURN(d.hc_head, LoadHcHead(l, c, last));
  DSV4_ASSIGN_OR_RETURN(d.markov_w1, l.View<BF16>(last + "markov_head.markov_w1.weight",
                                                  DType::kBF16, {V, R}));
  DSV4_ASSIGN_OR_RETURN(d.markov_w2,
                        l.Linear(last + "markov_head.markov_w2", LinearFormat::kBf16, V, R));
  DSV4_ASSIGN_OR_RETURN(d.confidence,
                        l.Linear(last + "confidence_head.proj", LinearFormat::kBf16, 1, D + R));
  return d;
}

}  // namespace

Result<std::unique_ptr<DraftWeights>> LoadDraftWeights(const ModelConfig& c,
                                                       const checkpoint::TensorSource& source,
                                                       DraftFamily family,
                                                       const checkpoint::LoadOptions& options) {
  if (c.arch != checkpoint::Arch::kV4) {
    return Status::InvalidArgument(source.label() + ": not a DeepSeek-V4 checkpoint");
  }
  if (family != DraftFamily::kNone && family != c.draft_family()) {
    return Status::InvalidArgument(
        source.label() + ": drafter '" + std::string(checkpoint::DraftFamilyName(family)) +
        "' requested, but config.json declares '" +
        std::string(checkpoint::DraftFamilyName(c.draft_family())) + "'");
  }
  auto dw = std::make_unique<DraftWeights>();
  dw->family = family;
  LinearLoader l(source, dw->arena, options);
  if (family == DraftFamily::kMtp) {
    DSV4_ASSIGN_OR_RETURN(dw->mtp, LoadMtp(l, c));
  } else if (family == DraftFamily::kDspark) {
    DSV4_ASSIGN_OR_RETURN(dw->dspark, LoadDspark(l, c));
  }
  return dw;
}

}  // namespace dsv4::v4
