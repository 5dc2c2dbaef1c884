// An assistant turn as it streams: splits the released text into reasoning and content
// deltas, and holds back a DSML tool-call block until the turn ends, when the whole text goes
// through ParseCompletionLenient (chat_parse.h) and the calls come out as OpenAI tool_calls.
//
// Invariant (tested): the concatenated deltas plus Finish() equal ParseCompletionLenient of
// the whole text - streaming and non-streaming responses carry the same fields.
// One per request; not thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/chat_format.h"
#include "tokenizer/chat_parse.h"

namespace dsv4::server {

struct ChatDelta {
  std::string reasoning;
  std::string content;
  bool empty() const { return reasoning.empty() && content.empty(); }
};

struct ChatTurnEnd {
  ChatDelta delta;                             // the rest of the text
  std::vector<tokenizer::ToolCall> tool_calls;  // ids empty: the caller assigns them
  Status parse_error;                          // why a held-back block was not a valid call
};

class ChatDeltaSplitter {
 public:
  // `thinking`: the prompt ended with <think>, so the turn starts with reasoning.
  // `tools`: the request offered tools, so a tool-call block may follow the content.
  // `format`: the model's chat format, which names the call block (chat_parse.h).
  ChatDeltaSplitter(tokenizer::ThinkingMode thinking, bool tools,
                    tokenizer::ChatFormat format = tokenizer::ChatFormat::kV4);

  ChatDelta Feed(std::string_view text);
  ChatTurnEnd Finish();

 private:
  enum class Phase { kReasoning, kContent, kToolCalls };
  ChatDelta Drain(bool at_end);

  tokenizer::ThinkingMode thinking_;
  bool tools_;
  tokenizer::ChatFormat format_;
  std::string marker_;  // where the call block starts (tokenizer::DsmlCallsStart)
  Phase phase_;
  std::string all_;      // the whole turn, for the final parse
  std::string pending_;  // not yet emitted
};

}  // namespace dsv4::server
