// Weights per GPU from the checkpoint inventory (checkpoint/checkpoint_layout.h: the tensors of
// spec §12.1 / §14 with their shapes and stored dtypes), never from published totals
// (capacity.md §4, §6.4). The routed experts are priced per parameter in the chosen expert
// dtype (scales included); the other tensors at the bytes the checkpoint stores them in, the
// same inventory `dsv4 inspect --ep N` and the expert-parallel loader count, or at capacity.md
// §4's FP8 simplification (DenseBasis::kFp8).
#pragma once

#include <cstdint>
#include <string_view>

#include "core/status.h"
#include "checkpoint/config.h"
#include "plan/parallel.h"

namespace dsv4::plan {

// Storage of the routed experts.
enum class ExpertDtype {
  kFp8,    // E4M3 + FP32 scale per 128x128 block: 1.00024 B/param (V3.2 native)
  kMxfp4,  // E2M1 + E8M0 scale per 32: 0.53125 B/param (V4 native)
  kNvfp4,  // E2M1 + E4M3 scale per 16: 0.5625 B/param (nvidia/*-NVFP4 checkpoints)
  kBf16,   // 2 B/param (dequantised checkpoints)
};
std::string_view ExpertDtypeName(ExpertDtype d);  // "fp8", "mxfp4", "nvfp4", "bf16"
Result<ExpertDtype> ParseExpertDtype(std::string_view s);
double BytesPerParam(ExpertDtype d);
// What the model's checkpoint stores: MXFP4 for V4, FP8 for V3.2, BF16 for BF16 checkpoints.
ExpertDtype NativeExpertDtype(const checkpoint::ModelConfig& c);
// Non-expert linears: FP8 with block scales (1 + 4/128^2 B/param), BF16 for BF16 checkpoints.
double DenseBytesPerParam(const checkpoint::ModelConfig& c);

// How the non-expert tensors are priced.
enum class DenseBasis {
  // Each at its stored bytes (default): FP8 + scales for the dense linears, BF16 for the router
  // gates, compressor and indexer projections, F32 for norms and mHC, I64 for tid2eid. What a
  // rank holds, to the byte.
  kStored,
  // capacity.md §4's simplification: every non-expert parameter at DenseBytesPerParam (FP8),
  // the embedding and head at 2 B. Its tables use it; about 1.5% under kStored for V4.
  kFp8,
};
std::string_view DenseBasisName(DenseBasis b);  // "stored", "fp8"
Result<DenseBasis> ParseDenseBasis(std::string_view s);

// Parameters by the budget they fall into. Sums of WeightSpec::num_params() over
// checkpoint::ListWeights(c, /*include_mtp=*/true); the *_bytes fields sum the stored bytes of
// the same weights' tensors (checkpoint::ExpandWeight, optional tensors left out).
struct ParamBreakdown {
  int64_t routed = 0;      // main-stack routed experts
  int64_t routed_mtp = 0;  // the MTP layer's routed experts
  int64_t embedding = 0;   // main token embedding (BF16)
  int64_t head = 0;        // main LM head (BF16)
  int64_t other = 0;       // attention, shared experts, dense FFN, router, norms, mHC
  int64_t other_mtp = 0;   // the rest of the MTP module
  // The MTP module's own copies of the embedding and head (V3.2 checkpoints store them).
  // DeepSeek shares them with the main model, so they are not loaded a second time.
  int64_t mtp_tied = 0;
  // Stored bytes of `other`, `other_mtp` and `embedding` + `head`.
  int64_t other_bytes = 0;
  int64_t other_mtp_bytes = 0;
  int64_t embedding_head_bytes = 0;

  int64_t routed_total(bool mtp) const { return routed + (mtp ? routed_mtp : 0); }
  int64_t other_total(bool mtp) const { return other + (mtp ? other_mtp : 0); }
  int64_t total() const {
    return routed + routed_mtp + embedding + head + other + other_mtp + mtp_tied;
  }
};
ParamBreakdown CountParams(const checkpoint::ModelConfig& c);

// Bytes of weights resident on one GPU (decimal-exact doubles; shares are fractional).
struct WeightsPerGpu {
  double routed_experts = 0;   // P_routed x b_expert x (1 + r/E) / gpus
  double other = 0;            // non-expert tensors' bytes / tp (replicated over dp)
  double embedding_head = 0;   // embedding + head (BF16) / tp (vocab-parallel over tp)
  double experts_per_gpu = 0;  // (E + redundant) / ep routed experts, each split gpus/ep ways
  double total() const { return routed_experts + other + embedding_head; }
  double replicated() const { return other + embedding_head; }
};
WeightsPerGpu ComputeWeightsPerGpu(const checkpoint::ModelConfig& c, const ParamBreakdown& p,
                                   ExpertDtype expert_dtype, const ParallelLayout& l,
                                   bool include_mtp, DenseBasis basis);

}  // namespace dsv4::plan
