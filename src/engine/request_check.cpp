#include "engine/request_check.h"

#include <string>

namespace dsv4::engine {
namespace {

RequestCheck Refuse(RequestProblem problem, Status status) {
  return {problem, std::move(status)};
}

std::string Str(int64_t v) { return std::to_string(v); }

}  // namespace

RequestCheck ValidateRequest(const GenerationRequest& r, const RequestLimits& l) {
  if (r.prompt.empty()) {
    return Refuse(RequestProblem::kMalformed, Status::InvalidArgument("prompt is empty"));
  }
  for (size_t i = 0; i < r.prompt.size(); ++i) {
    if (r.prompt[i] < 0 || r.prompt[i] >= l.vocab_size) {
      return Refuse(RequestProblem::kMalformed,
                    Status::InvalidArgument("prompt token " + Str(r.prompt[i]) + " at position " +
                                            Str(static_cast<int64_t>(i)) +
                                            " is outside the vocabulary [0, " + Str(l.vocab_size) +
                                            ")"));
    }
  }
  const int64_t n = static_cast<int64_t>(r.prompt.size());
  if (n >= l.context) {
    return Refuse(RequestProblem::kPromptTooLong,
                  Status::OutOfRange("the prompt is " + Str(n) + " tokens; the model's context is " +
                                     Str(l.context) + " tokens, prompt and output together"));
  }
  const int64_t max_new = r.stop.max_new_tokens;
  if (max_new < 1) {
    return Refuse(RequestProblem::kMalformed,
                  Status::InvalidArgument("max_new_tokens must be >= 1, got " + Str(max_new)));
  }
  const SamplingParams& s = r.sampling;
  if (!(s.temperature >= 0) || !(s.top_p > 0 && s.top_p <= 1) || s.top_k < 0) {
    return Refuse(RequestProblem::kMalformed,
                  Status::InvalidArgument("sampling parameters out of range (temperature >= 0, "
                                          "0 < top_p <= 1, top_k >= 0)"));
  }
  // Compared as a difference: max_new may be near INT64_MAX.
  if (max_new > l.context - n) {
    return Refuse(RequestProblem::kContextExceeded,
                  Status::OutOfRange("prompt of " + Str(n) + " tokens + " + Str(max_new) +
                                     " new tokens exceeds the context of " + Str(l.context)));
  }
  const int64_t total = n + max_new;
  const int64_t need = l.layout->BytesAt(total);
  if (need > l.kv_budget_bytes) {
    return Refuse(RequestProblem::kKvBudgetExceeded,
                  Status::OutOfRange("request needs " + Str(need) + " bytes of KV cache at " +
                                     Str(total) + " tokens but the whole budget is " +
                                     Str(l.kv_budget_bytes) + " bytes"));
  }
  return {};
}

}  // namespace dsv4::engine
