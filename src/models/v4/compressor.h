// The token compressor (spec §7): streaming softmax pooling of m tokens (HCA, m = 128) or of
// 2m overlapping tokens (CSA, m = 4) into one entry, per feature.
#pragma once

#include <cstdint>

#include "kv/v4_cache.h"

namespace dsv4::v4 {

// Consumes token `pos`: v = x·wkvᵀ, z = x·wgateᵀ + ape[pos mod m], both FP32 [kappa*c].
// When the token closes a window ((pos+1) mod m == 0) writes entry pos/m, FP32 [c], to
// `pooled` and returns true. Entry 0 of an overlapping compressor has no previous window
// (its scores start at -inf, so it gets weight 0).
bool CompressorStep(kv::CompressorState& s, const float* v, const float* z, int64_t pos,
                    float* pooled);

}  // namespace dsv4::v4
