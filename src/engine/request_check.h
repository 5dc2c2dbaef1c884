// The engine's limits on one request, checked in one place: what Engine::Check reports and
// Submit refuses before a request is queued (include/dsv4/engine.h, RequestProblem). Pure
// function; thread-safe.
#pragma once

#include <cstdint>

#include "dsv4/engine.h"
#include "kv/page_layout.h"

namespace dsv4::engine {

struct RequestLimits {
  int64_t vocab_size = 0;
  int64_t context = 0;                     // tokens: prompt and output together
  const kv::PageLayout* layout = nullptr;  // the KV bytes one sequence holds at n tokens
  int64_t kv_budget_bytes = 0;             // every sequence's pages together
};

// The first problem found, in this order: empty prompt, a token outside the vocabulary, a
// prompt that fills the context, max_new_tokens < 1, sampling values out of range, prompt +
// max_new_tokens past the context, KV at prompt + max_new_tokens past the whole budget.
RequestCheck ValidateRequest(const GenerationRequest& r, const RequestLimits& limits);

}  // namespace dsv4::engine
