#include "models/v4/rope.h"

#include "core/check.h"
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

void RopeTable::ApplyHeads(BF16* x, int64_t heads, int64_t stride, int64_t pos, bool inverse) const {
  constexpr size_t kMaxPairs = 256;
  DSV4_CHECK(inv_freq_.size() <= kMaxPairs);
  float c[kMaxPairs], s[kMaxPairs];
  models::RopeCosSin(inv_freq_, pos, c, s);
  for (int64_t h = 0; h < heads; ++h) {
    models::ApplyRopeInterleavedCs(c, s, inv_freq_.size(), x + h * stride, inverse);
  }
}

}  // namespace dsv4::v4
