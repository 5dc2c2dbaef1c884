// OpenAI response bodies and server-sent-event chunks, built from plain values. Pure
// functions (NewResponseId and NewToolCallId draw random ids); thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/chat_format.h"

namespace dsv4::server {

struct ResponseMeta {
  std::string id;  // "cmpl-..." / "chatcmpl-..."
  int64_t created = 0;  // Unix seconds
  std::string model;
};

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
};

// The assistant turn of a chat completion.
struct ChatResult {
  std::string reasoning_content;
  std::string content;
  std::vector<tokenizer::ToolCall> tool_calls;  // ids assigned (NewToolCallId)
};

// "<prefix>-" + 24 random hex digits.
std::string NewResponseId(std::string_view prefix);
// "call_" + 24 random hex digits.
std::string NewToolCallId();

nlohmann::ordered_json UsageJson(const Usage& u);

// POST /v1/completions, non-streaming: object "text_completion".
nlohmann::ordered_json CompletionResponse(const ResponseMeta& m, const std::string& text,
                                  std::string_view finish_reason, const Usage& u);
// One streamed completion chunk; `finish_reason` empty -> null.
nlohmann::ordered_json CompletionChunk(const ResponseMeta& m, const std::string& text,
                               std::string_view finish_reason);

// The "message" of a chat completion: content is null when there are tool calls and no text;
// reasoning_content only when there is some.
nlohmann::ordered_json ChatMessageJson(const ChatResult& r);
// The tool_calls array of a message or a delta ("index" is added for deltas, as OpenAI does).
nlohmann::ordered_json ToolCallsJson(const std::vector<tokenizer::ToolCall>& calls,
                                     bool with_index);

// POST /v1/chat/completions, non-streaming: object "chat.completion".
nlohmann::ordered_json ChatResponse(const ResponseMeta& m, const ChatResult& r,
                            std::string_view finish_reason, const Usage& u);
// One streamed chat chunk (object "chat.completion.chunk") with `delta`.
nlohmann::ordered_json ChatChunk(const ResponseMeta& m, nlohmann::ordered_json delta,
                         std::string_view finish_reason);
// The last chunk when stream_options.include_usage: no choices, only usage.
nlohmann::ordered_json UsageChunk(const ResponseMeta& m, std::string_view object, const Usage& u);

// "data: <json>\n\n". Ill-formed UTF-8 (which the detokenizer never produces) is replaced
// rather than thrown on.
std::string SseEvent(const nlohmann::ordered_json& j);
inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";

// JSON text for a response body, with the same replacement rule.
std::string JsonText(const nlohmann::ordered_json& j);

}  // namespace dsv4::server
