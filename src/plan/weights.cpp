#include "plan/weights.h"

#include "checkpoint/checkpoint_layout.h"

namespace dsv4::plan {

using checkpoint::ParamGroup;

std::string_view ExpertDtypeName(ExpertDtype d) {
  switch (d) {
    case ExpertDtype::kFp8:
      return "fp8";
    case ExpertDtype::kMxfp4:
      return "mxfp4";
    case ExpertDtype::kNvfp4:
      return "nvfp4";
    case ExpertDtype::kBf16:
      return "bf16";
  }
  return "?";
}

Result<ExpertDtype> ParseExpertDtype(std::string_view s) {
  for (ExpertDtype d :
       {ExpertDtype::kFp8, ExpertDtype::kMxfp4, ExpertDtype::kNvfp4, ExpertDtype::kBf16}) {
    if (s == ExpertDtypeName(d)) return d;
  }
  return Status::InvalidArgument("unknown expert dtype '" + std::string(s) +
                                 "': expected fp8, mxfp4, nvfp4 or bf16");
}

double BytesPerParam(ExpertDtype d) {
  switch (d) {
    case ExpertDtype::kFp8:
      return 1.0 + 4.0 / (128.0 * 128.0);
    case ExpertDtype::kMxfp4:
      return 0.5 + 1.0 / 32.0;
    case ExpertDtype::kNvfp4:
      return 0.5 + 1.0 / 16.0;
    case ExpertDtype::kBf16:
      return 2.0;
  }
  return 0;
}

ExpertDtype NativeExpertDtype(const checkpoint::ModelConfig& c) {
  if (c.weight_format == checkpoint::WeightFormat::kBf16) return ExpertDtype::kBf16;
  return c.arch == checkpoint::Arch::kV4 ? ExpertDtype::kMxfp4 : ExpertDtype::kFp8;
}

double DenseBytesPerParam(const checkpoint::ModelConfig& c) {
  // capacity.md §4 costs every non-expert parameter (norms, routers and mHC included) at the
  // FP8 rate; the BF16/FP32 small tensors add < 1.5% and the spec's tables leave them out.
  return c.weight_format == checkpoint::WeightFormat::kBf16 ? 2.0 : BytesPerParam(ExpertDtype::kFp8);
}

ParamBreakdown CountParams(const checkpoint::ModelConfig& c) {
  ParamBreakdown p;
  for (const checkpoint::WeightSpec& w : checkpoint::ListWeights(c, /*include_mtp=*/true)) {
    const int64_t n = w.num_params();
    switch (w.group) {
      case ParamGroup::kRoutedExperts:
        (w.mtp ? p.routed_mtp : p.routed) += n;
        break;
      case ParamGroup::kEmbedding:
        (w.mtp ? p.mtp_tied : p.embedding) += n;
        break;
      case ParamGroup::kHead:
        (w.mtp ? p.mtp_tied : p.head) += n;
        break;
      default:
        (w.mtp ? p.other_mtp : p.other) += n;
        break;
    }
  }
  return p;
}

WeightsPerGpu ComputeWeightsPerGpu(const checkpoint::ModelConfig& c, const ParamBreakdown& p,
                                   ExpertDtype expert_dtype, const ParallelLayout& l,
                                   bool include_mtp) {
  WeightsPerGpu w;
  const double experts = static_cast<double>(c.n_routed_experts + l.redundant_experts);
  const double redundancy = c.n_routed_experts > 0 ? experts / c.n_routed_experts : 1.0;
  w.routed_experts = static_cast<double>(p.routed_total(include_mtp)) *
                     BytesPerParam(expert_dtype) * redundancy / static_cast<double>(l.gpus());
  w.other = static_cast<double>(p.other_total(include_mtp)) * DenseBytesPerParam(c) /
            static_cast<double>(l.tp);
  w.embedding_head = static_cast<double>(p.embedding + p.head) * 2.0 / static_cast<double>(l.tp);
  w.experts_per_gpu = experts / static_cast<double>(l.ep);
  return w;
}

}  // namespace dsv4::plan
