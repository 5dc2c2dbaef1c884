#include "plan/weights.h"

#include "checkpoint/checkpoint_layout.h"
#include "checkpoint/tensor.h"

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
  // FP8 rate (DenseBasis::kFp8); the BF16/FP32 small tensors add about 1.5%.
  return c.weight_format == checkpoint::WeightFormat::kBf16 ? 2.0 : BytesPerParam(ExpertDtype::kFp8);
}

std::string_view DenseBasisName(DenseBasis b) {
  return b == DenseBasis::kStored ? "stored" : "fp8";
}

Result<DenseBasis> ParseDenseBasis(std::string_view s) {
  for (DenseBasis b : {DenseBasis::kStored, DenseBasis::kFp8}) {
    if (s == DenseBasisName(b)) return b;
  }
  return Status::InvalidArgument("unknown dense weights basis '" + std::string(s) +
                                 "': expected stored or fp8");
}

ParamBreakdown CountParams(const checkpoint::ModelConfig& c) {
  ParamBreakdown p;
  const std::vector<checkpoint::WeightSpec> weights = checkpoint::ListWeights(c, /*include_mtp=*/true);
  for (size_t i = 0; i < weights.size(); ++i) {
    const checkpoint::WeightSpec& w = weights[i];
    const int64_t n = w.num_params();
    int64_t bytes = 0;  // stored, as checkpoint::NativeTensors counts them
    if (w.group != ParamGroup::kRoutedExperts) {
      for (const checkpoint::TensorSpec& t : checkpoint::ExpandWeight(c, w, static_cast<int64_t>(i))) {
        if (!t.optional) bytes += checkpoint::NumElements(t.shape) * static_cast<int64_t>(DTypeSize(t.dtype));
      }
    }
    switch (w.group) {
      case ParamGroup::kRoutedExperts:
        (w.mtp ? p.routed_mtp : p.routed) += n;
        break;
      case ParamGroup::kEmbedding:
      case ParamGroup::kHead:
        if (w.mtp) {
          p.mtp_tied += n;
        } else {
          (w.group == ParamGroup::kEmbedding ? p.embedding : p.head) += n;
          p.embedding_head_bytes += bytes;
        }
        break;
      default:
        (w.mtp ? p.other_mtp : p.other) += n;
        (w.mtp ? p.other_mtp_bytes : p.other_bytes) += bytes;
        break;
    }
  }
  return p;
}

WeightsPerGpu ComputeWeightsPerGpu(const checkpoint::ModelConfig& c, const ParamBreakdown& p,
                                   ExpertDtype expert_dtype, const ParallelLayout& l,
                                   bool include_mtp, DenseBasis basis) {
  WeightsPerGpu w;
  const double experts = static_cast<double>(c.n_routed_experts + l.redundant_experts);
  const double redundancy = c.n_routed_experts > 0 ? experts / c.n_routed_experts : 1.0;
  w.routed_experts = static_cast<double>(p.routed_total(include_mtp)) *
                     BytesPerParam(expert_dtype) * redundancy / static_cast<double>(l.gpus());
  const double tp = static_cast<double>(l.tp);
  if (basis == DenseBasis::kStored) {
    w.other = static_cast<double>(p.other_bytes + (include_mtp ? p.other_mtp_bytes : 0)) / tp;
    w.embedding_head = static_cast<double>(p.embedding_head_bytes) / tp;
  } else {
    w.other = static_cast<double>(p.other_total(include_mtp)) * DenseBytesPerParam(c) / tp;
    w.embedding_head = static_cast<double>(p.embedding + p.head) * 2.0 / tp;
  }
  w.experts_per_gpu = experts / static_cast<double>(l.ep);
  return w;
}

}  // namespace dsv4::plan
