#include "kv/speculation_mark.h"

#include <string>

namespace dsv4::kv {

Status SpeculationMark::Begin(int64_t num_tokens, int64_t max_tokens, int64_t limit,
                              const char* limit_what) {
  if (active()) {
    return Status::FailedPrecondition("BeginSpeculation at position " +
                                      std::to_string(num_tokens) +
                                      ": a speculation mark is already active at position " +
                                      std::to_string(pos_) +
                                      " (end it with RollbackTo or EndSpeculation first)");
  }
  if (max_tokens < 1 || max_tokens > limit) {
    return Status::InvalidArgument("BeginSpeculation: max_tokens " + std::to_string(max_tokens) +
                                   ", expected 1.." + std::to_string(limit) + " (" + limit_what +
                                   ")");
  }
  pos_ = num_tokens;
  max_tokens_ = max_tokens;
  return Status::Ok();
}

Status SpeculationMark::AppendError(int64_t num_tokens, int64_t n) const {
  return Status::FailedPrecondition(
      "forward of " + std::to_string(n) + " tokens at position " + std::to_string(num_tokens) +
      " passes the speculation mark at " + std::to_string(pos_) + " + " +
      std::to_string(max_tokens_) + " tokens (RollbackTo or EndSpeculation first)");
}

Status SpeculationMark::CheckRollback(int64_t num_tokens, int64_t n) const {
  if (!active()) {
    return Status::FailedPrecondition("RollbackTo(" + std::to_string(n) +
                                      ") without an active speculation mark");
  }
  if (n < pos_ || n > num_tokens) {
    return Status::OutOfRange("RollbackTo(" + std::to_string(n) + "): expected a position in [" +
                              std::to_string(pos_) + ", " + std::to_string(num_tokens) +
                              "] (the mark .. the tokens held)");
  }
  return Status::Ok();
}

}  // namespace dsv4::kv
