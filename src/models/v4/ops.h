// Small per-row operations of the V4 forward that V3.2 does not share (spec §4.2). RMSNorm
// and the Hadamard rotation are models/common/norm.h and hadamard.h.
#pragma once

#include <cstdint>

#include "core/bf16.h"

namespace dsv4::v4 {

// Unweighted per-head query norm evaluated in BF16 arithmetic as the reference does (§4.2):
// every intermediate (square, mean, + eps, rsqrt, product) is rounded to BF16.
void HeadRmsNormBf16(BF16* x, int64_t dim, float eps);

}  // namespace dsv4::v4
