// Which hidden rows a forward call records for a drafter (BatchItem::hidden).
#pragma once

namespace dsv4::models {

enum class HiddenRows {
  // The final residual streams before HC_head: BF16 [n, hc*D] (the April MTP module's X_t,
  // spec §11.3).
  kFinalStreams,
  // After each of dspark.target_layer_ids, the mean of the hc residual streams (FP32 sum in
  // stream order, divided by hc, one BF16 rounding), concatenated in that order: BF16 [n, T*D]
  // (DSpark's main_proj input, spec §11.4).
  kTargetLayerMeans,
};

}  // namespace dsv4::models
