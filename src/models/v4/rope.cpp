#include "models/v4/rope.h"

#include "models/common/rope.h"

namespace dsv4::v4 {

// The table construction and the rotation are shared with V3.2 (model/rope.h).
void YarnRange(int64_t rope_dim, double theta, const checkpoint::YarnConfig& yarn, double* lo,
               double* hi) {
  models::YarnRange(rope_dim, theta, yarn, lo, hi);
}

RopeTable::RopeTable(int64_t rope_dim, double theta, const checkpoint::YarnConfig& yarn)
    : inv_freq_(models::RopeInvFreq(rope_dim, theta, yarn)) {}

RopeTable RopeTable::ForLayer(const checkpoint::ModelConfig& c, int64_t layer) {
  if (c.ratio(layer) == 0) return RopeTable(c.qk_rope_head_dim, c.rope_theta, checkpoint::YarnConfig{});
  return RopeTable(c.qk_rope_head_dim, c.compress_rope_theta, c.yarn);
}

void RopeTable::Apply(BF16* x, int64_t pos, bool inverse) const {
  models::ApplyRopeInterleaved(inv_freq_, x, pos, inverse);
}

}  // namespace dsv4::v4
