// A stand-in model that computes nothing and only accounts KV pages: each sequence reserves
// exactly the pages the real model's cache would (same PageLayout), so the scheduler and the
// KV manager can be driven at real dimensions (V3.2, V4-Pro, V4-Flash at 1M tokens) on a
// machine that could never run them. Pools may have no backing memory (writes_kv() is
// false). Every sampled token is 0 (logits of size 1).
#pragma once

#include <memory>
#include <string>

#include "runner/causal_lm.h"
#include "runner/loaded_model.h"

namespace dsv4::runner {

std::unique_ptr<CausalLm> MakeAccountingLm(const checkpoint::ModelConfig& c);

// The stand-in at a preset's dimensions ("v3.2", "v4-pro", "v4-flash"; PresetConfig's error
// for an unknown name), its context extended to 2^40 tokens, for an engine's admission study (a
// ModelFactory: [p] { return AccountingModel(p); }). It has no tokenizer.
Result<std::unique_ptr<LoadedModel>> AccountingModel(const std::string& preset);

}  // namespace dsv4::runner
