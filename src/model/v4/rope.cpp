#include "model/v4/rope.h"

#include "model/rope.h"

namespace dsv4::v4 {

// The table construction and the rotation are shared with V3.2 (model/rope.h).
void YarnRange(int64_t rope_dim, double theta, const model::YarnConfig& yarn, double* lo,
               double* hi) {
  model::YarnRange(rope_dim, theta, yarn, lo, hi);
}

RopeTable::RopeTable(int64_t rope_dim, double theta, const model::YarnConfig& yarn)
    : inv_freq_(model::RopeInvFreq(rope_dim, theta, yarn)) {}

RopeTable RopeTable::ForLayer(const model::ModelConfig& c, int64_t layer) {
  if (c.ratio(layer) == 0) return RopeTable(c.qk_rope_head_dim, c.rope_theta, model::YarnConfig{});
  return RopeTable(c.qk_rope_head_dim, c.compress_rope_theta, c.yarn);
}

void RopeTable::Apply(BF16* x, int64_t pos, bool inverse) const {
  model::ApplyRopeInterleaved(inv_freq_, x, pos, inverse);
}

}  // namespace dsv4::v4
