// A request as the scheduler sees it: its tokens (prompt, then generated), how many of them
// have their KV in `state` (num_computed catching up to the token count; no separate prefill
// phase), and its per-sequence model state (pages). Owned by the engine; the scheduler only
// holds pointers.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "kv/sequence_state.h"

namespace dsv4::sched {

using SeqId = int64_t;

enum class SeqStatus { kWaiting, kRunning, kFinished };

struct Sequence {
  SeqId id = 0;
  int64_t arrival = 0;          // FCFS order
  std::vector<int32_t> tokens;  // prompt + generated
  int64_t num_prompt = 0;
  int64_t num_computed = 0;     // tokens [0, num_computed) have their KV in `state`
  int64_t max_tokens = 0;       // prompt + max new tokens: the most it can ever hold
  SeqStatus status = SeqStatus::kWaiting;
  int64_t num_preemptions = 0;
  // Positions where a chunk must end (prefix-cache snapshot points), ascending.
  std::vector<int64_t> stop_points;
  // Speculative decoding: drafted tokens (the engine holds them) that follow the last token
  // and that the next decode step may verify along with it; the scheduler schedules up to
  // this many of them (ScheduledChunk::num_draft).
  int64_t num_draft = 0;
  std::unique_ptr<kv::SequenceState> state;

  int64_t num_tokens() const { return static_cast<int64_t>(tokens.size()); }
  int64_t num_generated() const { return num_tokens() - num_prompt; }
  int64_t remaining() const { return num_tokens() - num_computed; }
  // After a step that verified drafts: `emitted` (the accepted drafts, then the target's own
  // token) joins the tokens, and the accepted drafts, whose KV the step kept, are computed.
  void AppendVerified(std::span<const int32_t> emitted) {
    tokens.insert(tokens.end(), emitted.begin(), emitted.end());
    num_computed += static_cast<int64_t>(emitted.size()) - 1;
  }
  // Tokens the next chunk may cover: up to the next stop point.
  int64_t chunk_limit() const {
    for (int64_t p : stop_points) {
      if (p > num_computed) return std::min(remaining(), p - num_computed);
    }
    return remaining();
  }
};

}  // namespace dsv4::sched
