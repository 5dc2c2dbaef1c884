// The speculation mark both paged caches (V4, V3.2) keep for SequenceState's
// BeginSpeculation / RollbackTo / EndSpeculation: where the mark is, how far forward calls may
// go past it, and the checks (with their messages) on each call. The caches keep the undo
// data themselves. Not thread-safe (the engine thread owns every sequence).
#pragma once

#include <cstdint>

#include "core/status.h"

namespace dsv4::kv {

class SpeculationMark {
 public:
  bool active() const { return pos_ >= 0; }
  int64_t pos() const { return pos_; }
  int64_t max_tokens() const { return max_tokens_; }

  // Marks position `num_tokens` for up to `max_tokens` appended positions:
  // FailedPrecondition when a mark is already active; InvalidArgument unless
  // 1 <= max_tokens <= limit (what the cache can take back: `limit_what` says why).
  Status Begin(int64_t num_tokens, int64_t max_tokens, int64_t limit, const char* limit_what);
  // Appending `n` positions to a sequence at `num_tokens`: FailedPrecondition when that goes
  // past the mark's pos() + max_tokens(). Ok when no mark is active.
  Status CheckAppend(int64_t num_tokens, int64_t n) const {
    if (!active() || num_tokens + n <= pos_ + max_tokens_) return Status::Ok();
    return AppendError(num_tokens, n);
  }
  // RollbackTo(n) on a sequence at `num_tokens`: FailedPrecondition without a mark;
  // OutOfRange unless pos() <= n <= num_tokens.
  Status CheckRollback(int64_t num_tokens, int64_t n) const;
  void End() { pos_ = -1, max_tokens_ = 0; }

 private:
  Status AppendError(int64_t num_tokens, int64_t n) const;
  int64_t pos_ = -1;
  int64_t max_tokens_ = 0;
};

}  // namespace dsv4::kv
