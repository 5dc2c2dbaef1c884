#include "server/chat_stream.h"

#include "server/text_stream.h"

namespace dsv4::server {

ChatDeltaSplitter::ChatDeltaSplitter(tokenizer::ThinkingMode thinking, bool tools,
                                     tokenizer::ChatFormat format)
    : thinking_(thinking),
      tools_(tools),
      format_(format),
      marker_(tokenizer::DsmlCallsStart(format)),
      phase_(thinking == tokenizer::ThinkingMode::kThinking ? Phase::kReasoning
                                                             : Phase::kContent) {}

ChatDelta ChatDeltaSplitter::Feed(std::string_view text) {
  all_ += text;
  pending_ += text;
  return Drain(/*at_end=*/false);
}

ChatDelta ChatDeltaSplitter::Drain(bool at_end) {
  static const std::vector<std::string> kThinkEnd = {std::string(tokenizer::kThinkEndToken)};
  const std::vector<std::string> marker = {marker_};
  ChatDelta d;
  while (!pending_.empty()) {
    if (phase_ == Phase::kReasoning) {
      // Reasoning runs to the first </think> (ParseCompletionLenient does the same).
      const size_t at = pending_.find(kThinkEnd[0]);
      if (at == std::string::npos) {
        const size_t n = at_end ? pending_.size() : ReleasableLength(pending_, kThinkEnd);
        d.reasoning += pending_.substr(0, n);
        pending_.erase(0, n);
        break;
      }
      d.reasoning += pending_.substr(0, at);
      pending_.erase(0, at + kThinkEnd[0].size());
      phase_ = Phase::kContent;
    } else if (phase_ == Phase::kContent) {
      if (!tools_) {
        d.content += pending_;
        pending_.clear();
        break;
      }
      const size_t at = pending_.find(marker[0]);
      if (at == std::string::npos) {
        const size_t n = at_end ? pending_.size() : ReleasableLength(pending_, marker);
        d.content += pending_.substr(0, n);
        pending_.erase(0, n);
        break;
      }
      // Everything from the marker on is held for the final parse.
      d.content += pending_.substr(0, at);
      pending_.erase(0, at);
      phase_ = Phase::kToolCalls;
    } else {
      break;
    }
  }
  return d;
}

ChatTurnEnd ChatDeltaSplitter::Finish() {
  ChatTurnEnd end;
  end.delta = Drain(/*at_end=*/true);
  if (phase_ == Phase::kToolCalls) {
    tokenizer::LenientParse p = tokenizer::ParseCompletionLenient(all_, thinking_, format_);
    if (!p.message.tool_calls.empty()) {
      end.tool_calls = std::move(p.message.tool_calls);
    } else {
      // Not a valid block: the user gets it as text, as the lenient parse returns it.
      end.delta.content += pending_;
      end.parse_error = p.error;
    }
    pending_.clear();
  }
  return end;
}

}  // namespace dsv4::server
