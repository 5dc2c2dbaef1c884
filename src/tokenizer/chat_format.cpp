// The chat-format front door: roles, the choice between the V4 and V3.2 renderers, and
// encoding a rendered prompt's segments. The formats themselves: chat_format_v4.cpp,
// chat_format_v32.cpp; what they share: chat_segments.cpp.
#include "tokenizer/chat_format.h"

#include "tokenizer/chat_format_v32.h"
#include "tokenizer/chat_format_v4.h"
#include "tokenizer/chat_segments.h"
#include "tokenizer/tokenizer.h"

namespace dsv4::tokenizer {

using nlohmann::ordered_json;

Result<Role> ParseRole(std::string_view role) {
  for (Role r : {Role::kSystem, Role::kDeveloper, Role::kUser, Role::kAssistant, Role::kTool,
                 Role::kLatestReminder}) {
    if (RoleName(r) == role) return r;
  }
  return Status::InvalidArgument("role: expected system, developer, user, assistant, tool or " +
                                 std::string("latest_reminder, got '") + std::string(role) + "'");
}

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kSystem:
      return "system";
    case Role::kDeveloper:
      return "developer";
    case Role::kUser:
      return "user";
    case Role::kAssistant:
      return "assistant";
    case Role::kTool:
      return "tool";
    case Role::kLatestReminder:
      return "latest_reminder";
  }
  return "unknown";
}

std::string_view ChatFormatName(ChatFormat format) {
  return format == ChatFormat::kV32 ? "deepseek-v3.2" : "deepseek-v4";
}

Result<std::string> RenderDsmlInvoke(const ToolCall& call) {
  chat_internal::SegmentWriter w;
  DSV4_RETURN_IF_ERROR(chat_internal::WriteDsmlInvoke(
      call, chat_internal::NonJsonArguments::kAsStringParameter, &w));
  return chat_internal::JoinSegments(w.Take());
}

Result<std::vector<PromptSegment>> RenderChatSegments(std::span<const ChatMessage> messages,
                                                      const ordered_json& tools,
                                                      const ChatTemplateOptions& options) {
  DSV4_ASSIGN_OR_RETURN(std::vector<ordered_json> functions,
                        chat_internal::ToolFunctions(tools));
  switch (options.format) {
    case ChatFormat::kV4:
      return RenderV4ChatSegments(messages, functions, options);
    case ChatFormat::kV32:
      return RenderV32ChatSegments(messages, functions, options);
  }
  return Status::InvalidArgument("unknown chat format");
}

Result<std::string> RenderChatPrompt(std::span<const ChatMessage> messages,
                                     const ordered_json& tools,
                                     const ChatTemplateOptions& options) {
  DSV4_ASSIGN_OR_RETURN(std::vector<PromptSegment> segments,
                        RenderChatSegments(messages, tools, options));
  return chat_internal::JoinSegments(segments);
}

Result<std::vector<TokenId>> EncodeChatPrompt(const Tokenizer& tokenizer,
                                              std::span<const ChatMessage> messages,
                                              const ordered_json& tools,
                                              const ChatTemplateOptions& options) {
  DSV4_ASSIGN_OR_RETURN(std::vector<PromptSegment> segments,
                        RenderChatSegments(messages, tools, options));
  std::vector<TextSegment> text;
  text.reserve(segments.size());
  for (const PromptSegment& s : segments) text.push_back({s.text, !s.client});
  // BOS, when wanted, is the template's first segment.
  return tokenizer.EncodeSegments(text, {.add_bos = false, .parse_special = true});
}

}  // namespace dsv4::tokenizer
