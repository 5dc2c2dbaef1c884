// A stand-in model that computes nothing and only accounts KV pages: each sequence reserves
// exactly the pages the real model's cache would (same PageLayout), so the scheduler and the
// KV manager can be driven at real dimensions (V3.2, V4-Pro, V4-Flash at 1M tokens) on a
// machine that could never run them. Pools may have no backing memory. Every sampled token
// is 0 (logits of size 1).
#pragma once

#include <memory>

#include "runner/causal_lm.h"

namespace dsv4::runner {

std::unique_ptr<CausalLm> MakeAccountingLm(const checkpoint::ModelConfig& c);

}  // namespace dsv4::runner
