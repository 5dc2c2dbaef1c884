// Rotary position embedding tables (spec §4.3). SWA-only layers: plain θ = rope_theta.
// Layers with a compressor: θ = compress_rope_theta with YaRN (no magnitude factor), used for
// everything in the layer (queries, window keys, compressed entries, indexer).
#pragma once

#include <cstdint>
#include <vector>

#include "core/bf16.h"
#include "checkpoint/config.h"

namespace dsv4::v4 {

class RopeTable {
 public:
  // `rope_dim` rotated dims (pairs = rope_dim / 2); YaRN when `yarn.enabled`.
  RopeTable(int64_t rope_dim, double theta, const checkpoint::YarnConfig& yarn);
  // The table of layer `layer` of `c` (plain or compressed per the layer's ratio).
  static RopeTable ForLayer(const checkpoint::ModelConfig& c, int64_t layer);

  // Interleaved rotation of x[0..rope_dim) (pairs (2k, 2k+1)) by angle fp32(pos)*inv[k],
  // the angle rounded to FP32 as the reference does; inverse rotates by the negated angle.
  // FP32 math, BF16 result in place.
  void Apply(BF16* x, int64_t pos, bool inverse) const;
  // Apply to `heads` vectors at x, x + stride, ... at one position, cos/sin formed once (the
  // same bits as Apply on each).
  void ApplyHeads(BF16* x, int64_t heads, int64_t stride, int64_t pos, bool inverse) const;

  const std::vector<float>& inv_freq() const { return inv_freq_; }

 private:
  std::vector<float> inv_freq_;  // FP32 [rope_dim / 2]
};

// YaRN correction range (spec §4.3): pairs below `lo` keep their frequency, pairs above `hi`
// are divided by the factor, linear blend between.
void YarnRange(int64_t rope_dim, double theta, const checkpoint::YarnConfig& yarn, double* lo,
               double* hi);

}  // namespace dsv4::v4
