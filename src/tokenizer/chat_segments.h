// Pieces both chat formats (chat_format_v4.cpp, chat_format_v32.cpp) are built from: the
// segment writer that records who wrote each piece of a prompt, the DSML tool-call block
// (the same tags in both formats, only the block's name differs), the tool-schema lines,
// and the checks on message content. Internal to src/tokenizer; pure functions.
#pragma once

#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "tokenizer/chat_format.h"

namespace dsv4::tokenizer::chat_internal {

// Collects a prompt as segments; neighbouring pieces from the same source share one segment.
class SegmentWriter {
 public:
  void Template(std::string_view text) { Add(text, false); }
  void Client(std::string_view text) { Add(text, true); }
  std::vector<PromptSegment> Take() { return std::move(segments_); }

 private:
  void Add(std::string_view text, bool client);
  std::vector<PromptSegment> segments_;
};

std::string JoinSegments(const std::vector<PromptSegment>& segments);

// "messages[I]" or "messages[I].FIELD": how errors name a request message.
std::string MessagePath(int index, std::string_view field = {});

// tools_from_openai_format: [{"type": "function", "function": F}, ...] -> [F, ...].
// InvalidArgument naming tools[i] for an entry without a "function" object.
Result<std::vector<nlohmann::ordered_json>> ToolFunctions(const nlohmann::ordered_json& tools);

// A tools section: the format's template text `head`, one schema line per function (Python
// JSON, client text) joined by "\n", then `tail`.
void WriteToolsSection(std::string_view head, std::span<const nlohmann::ordered_json> functions,
                       std::string_view tail, SegmentWriter* w);

// find_last_user_index (both encoders): the index of the last user or developer message,
// -1 when there is none. `role_of(message)` gives a message's Role.
template <typename Message, typename RoleOf>
int LastUserIndex(const std::vector<Message>& messages, RoleOf role_of) {
  for (int i = static_cast<int>(messages.size()) - 1; i >= 0; --i) {
    const Role r = role_of(messages[i]);
    if (r == Role::kUser || r == Role::kDeveloper) return i;
  }
  return -1;
}

// What a call's arguments text is when it is not JSON.
enum class NonJsonArguments {
  kAsStringParameter,  // V4 encode_arguments_to_dsml: one string parameter "arguments"
  kError,              // V3.2 encode_arguments_to_dsml: json.loads fails
};

// encode_arguments_to_dsml inside tool_call_template: <｜DSML｜invoke name="NAME">, one
// <｜DSML｜parameter> line per argument, </｜DSML｜invoke>. InvalidArgument ("arguments: ...")
// for arguments nested too deep, JSON that is not an object, or (kError) text that is not
// JSON.
Status WriteDsmlInvoke(const ToolCall& call, NonJsonArguments non_json, SegmentWriter* w);

// "\n\n<｜DSML｜BLOCK>\n" + the invokes joined by "\n" + "\n</｜DSML｜BLOCK>" (tool_calls_template
// with the leading blank line of render_message). Errors name messages[index].tool_calls[i].
Status WriteDsmlCalls(std::string_view block, std::span<const ToolCall> calls,
                      NonJsonArguments non_json, int index, SegmentWriter* w);

// A message's text when its content may have been given as a list of parts: the parts'
// texts joined by "\n" (vLLM's flattening; neither reference encoder takes a list here).
// InvalidArgument naming messages[index].content[j] for a part that is not text.
Result<std::string> FlattenTextContent(const ChatMessage& m, int index);

}  // namespace dsv4::tokenizer::chat_internal
