// Rules and their sources: docs/chat-format.md ("DeepSeek-V3.2"). Function names follow
// encoding_dsv32.py (drop_thinking_messages, render_message) so the two can be read side by
// side.
#include "tokenizer/chat_format_v32.h"

#include <string>

#include "tokenizer/chat_segments.h"
#include "tokenizer/tokenizer.h"

namespace dsv4::tokenizer {
namespace {

using nlohmann::ordered_json;
using chat_internal::LastUserIndex;
using chat_internal::MessagePath;
using chat_internal::SegmentWriter;


// encoding_dsv32.py TOOLS_SYSTEM_TEMPLATE with dsml_token, thinking_start_token and
// thinking_end_token filled in; the tool schemas go between the two parts.
constexpr std::string_view kToolsHead =
    "## Tools\n"
    "\n"
    "You have access to a set of tools you can use to answer the user's question.\n"
    "You can invoke functions by writing a \"<｜DSML｜function_calls>\" block like the "
    "following as part of your reply to the user:\n"
    "<｜DSML｜function_calls>\n"
    "<｜DSML｜invoke name=\"$FUNCTION_NAME\">\n"
    "<｜DSML｜parameter name=\"$PARAMETER_NAME\" string=\"true|false\">$PARAMETER_VALUE"
    "</｜DSML｜parameter>\n"
    "...\n"
    "</｜DSML｜invoke>\n"
    "<｜DSML｜invoke name=\"$FUNCTION_NAME2\">\n"
    "...\n"
    "</｜DSML｜invoke>\n"
    "</｜DSML｜function_calls>\n"
    "\n"
    "String and scalar parameters should be specified as is without any escaping or quotes, "
    "while lists and objects should use JSON format. The \"string\" attribute should be set "
    "to \"true\" for string type parameters and \"false\" for other types (numbers, booleans, "
    "arrays, objects).\n"
    "\n"
    "If the thinking_mode is enabled, then after function results you should strongly "
    "consider outputting a thinking block. Here is an example:\n"
    "\n"
    "<｜DSML｜function_calls>\n"
    "...\n"
    "</｜DSML｜function_calls>\n"
    "\n"
    "<function_results>\n"
    "...\n"
    "</function_results>\n"
    "\n"
    "<think>...thinking about results</think>\n"
    "\n"
    "Here are the functions available in JSONSchema format:\n"
    "<functions>\n";
constexpr std::string_view kToolsTail = "\n</functions>\n";

struct Msg {
  const ChatMessage* message = nullptr;
  int source = 0;  // index in the request's messages (-1: the synthetic tools message)
  std::string content;
  bool drop_reasoning = false;
  std::vector<ordered_json> tools;
  Role role() const { return message == nullptr ? Role::kSystem : message->role; }
};

// A message's role, for LastUserIndex.
constexpr auto RoleOf = [](const Msg& m) { return m.role(); };

// drop_thinking_messages: before the last user message, assistant turns lose their reasoning
// and developer messages are removed.
std::vector<Msg> DropThinkingMessages(std::vector<Msg> in) {
  const int last_user = LastUserIndex(in, RoleOf);
  std::vector<Msg> out;
  for (int i = 0; i < static_cast<int>(in.size()); ++i) {
    if (i < last_user && in[i].role() == Role::kDeveloper) continue;
    if (i < last_user && in[i].role() == Role::kAssistant) in[i].drop_reasoning = true;
    out.push_back(std::move(in[i]));
  }
  return out;
}

struct RenderContext {
  const std::vector<Msg>& messages;
  bool thinking;
  int last_user;
};

// A tool result: the first of a run opens <function_results>, the one answering the last
// call closes it and hands over to the assistant again.
Status WriteToolResult(const RenderContext& ctx, int index, SegmentWriter* w) {
  const Msg& m = ctx.messages[index];
  int prev = index - 1;
  while (prev >= 0 && ctx.messages[prev].role() == Role::kTool) --prev;
  const size_t order = static_cast<size_t>(index - prev);  // 1 for the first result
  const ChatMessage* assistant = prev >= 0 ? ctx.messages[prev].message : nullptr;
  if (assistant == nullptr || assistant->role != Role::kAssistant ||
      assistant->tool_calls.size() < order) {
    return Status::InvalidArgument(
        MessagePath(m.source) + ": a tool message must answer one of the tool_calls of the " +
        "assistant message before it (this is result " + std::to_string(order) + ", that " +
        "message has " +
        std::to_string(assistant != nullptr && assistant->role == Role::kAssistant
                           ? assistant->tool_calls.size()
                           : 0) +
        " calls)");
  }
  if (order == 1) w->Template("\n\n<function_results>");
  w->Template("\n<result>");
  w->Client(m.content);
  w->Template("</result>");
  if (order == assistant->tool_calls.size()) {
    w->Template("\n</function_results>\n\n");
    w->Template(ctx.thinking && index >= ctx.last_user ? kThinkStartToken : kThinkEndToken);
  }
  return Status::Ok();
}

Status WriteAssistant(const RenderContext& ctx, int index, SegmentWriter* w) {
  const Msg& m = ctx.messages[index];
  const ChatMessage& cm = *m.message;
  if (ctx.thinking && index > ctx.last_user) {
    const std::string reasoning = m.drop_reasoning ? "" : cm.reasoning_content;
    if (reasoning.empty() && cm.tool_calls.empty()) {
      return Status::InvalidArgument(
          MessagePath(m.source, "reasoning_content") +
          ": in thinking mode an assistant message after the last user message needs "
          "reasoning_content or tool_calls (DeepSeek-V3.2's encoder refuses it)");
    }
    w->Client(reasoning);
    w->Template(kThinkEndToken);
  }
  w->Client(m.content);
  DSV4_RETURN_IF_ERROR(chat_internal::WriteDsmlCalls(
      "function_calls", cm.tool_calls, chat_internal::NonJsonArguments::kError, m.source, w));
  w->Template(kEosToken);
  return Status::Ok();
}

// render_message.
Status WriteMessage(const RenderContext& ctx, int index, SegmentWriter* w) {
  const Msg& m = ctx.messages[index];
  const std::string_view think =
      ctx.thinking && index == ctx.last_user ? kThinkStartToken : kThinkEndToken;
  switch (m.role()) {
    case Role::kSystem:
      w->Client(m.content);
      if (!m.tools.empty()) {
        w->Template("\n\n");
        chat_internal::WriteToolsSection(kToolsHead, m.tools, kToolsTail, w);
      }
      return Status::Ok();
    case Role::kDeveloper:
      if (m.content.empty()) {
        return Status::InvalidArgument(MessagePath(m.source, "content") +
                                       ": a developer message needs content");
      }
      w->Template(kUserToken);
      if (!m.tools.empty()) {
        w->Template("\n\n");
        chat_internal::WriteToolsSection(kToolsHead, m.tools, kToolsTail, w);
      }
      w->Template("\n\n# The user's message is: ");
      w->Client(m.content);
      w->Template(kAssistantToken);
      w->Template(think);
      return Status::Ok();
    case Role::kUser:
      w->Template(kUserToken);
      w->Client(m.content);
      w->Template(kAssistantToken);
      w->Template(think);
      return Status::Ok();
    case Role::kTool:
      return WriteToolResult(ctx, index, w);
    case Role::kAssistant:
      return WriteAssistant(ctx, index, w);
    case Role::kLatestReminder:
      break;  // refused in ToMsgs
  }
  DSV4_CHECK_MSG(false, "latest_reminder message reached the V3.2 renderer");
  return Status::Ok();
}

// The request's messages, checked for what V3.2 does not have.
Result<std::vector<Msg>> ToMsgs(std::span<const ChatMessage> messages) {
  std::vector<Msg> msgs;
  msgs.reserve(messages.size() + 1);
  for (int i = 0; i < static_cast<int>(messages.size()); ++i) {
    const ChatMessage& cm = messages[i];
    if (cm.role == Role::kLatestReminder) {
      return Status::InvalidArgument(MessagePath(i, "role") +
                                     ": DeepSeek-V3.2's chat format has no latest_reminder role");
    }
    if (!cm.task.empty()) {
      return Status::InvalidArgument(MessagePath(i, "task") +
                                     ": task tokens are DeepSeek-V4 only, this model is V3.2");
    }
    Msg m{&cm, i, "", false, {}};
    DSV4_ASSIGN_OR_RETURN(m.content, chat_internal::FlattenTextContent(cm, i));
    msgs.push_back(std::move(m));
  }
  return msgs;
}

}  // namespace

Result<std::vector<PromptSegment>> RenderV32ChatSegments(std::span<const ChatMessage> messages,
                                                         std::span<const ordered_json> functions,
                                                         const ChatTemplateOptions& options) {
  DSV4_ASSIGN_OR_RETURN(std::vector<Msg> msgs, ToMsgs(messages));
  // Request-level tools: on a leading system or developer message, or on a new empty system
  // message in front (as for V4; vLLM's deepseek_v32 tokenizer mode does the same).
  if (!functions.empty()) {
    if (!msgs.empty() &&
        (msgs[0].role() == Role::kSystem || msgs[0].role() == Role::kDeveloper)) {
      msgs[0].tools.assign(functions.begin(), functions.end());
    } else {
      Msg system{nullptr, -1, "", false, {functions.begin(), functions.end()}};
      msgs.insert(msgs.begin(), std::move(system));
    }
  }
  const bool thinking = options.thinking == ThinkingMode::kThinking;
  // encode_messages: unlike V4, tools do not turn drop_thinking off.
  if (thinking && options.drop_thinking) msgs = DropThinkingMessages(std::move(msgs));
  const RenderContext ctx{msgs, thinking, LastUserIndex(msgs, RoleOf)};
  SegmentWriter w;
  if (options.add_bos) w.Template(kBosToken);
  for (int i = 0; i < static_cast<int>(msgs.size()); ++i) {
    DSV4_RETURN_IF_ERROR(WriteMessage(ctx, i, &w));
  }
  return w.Take();
}

}  // namespace dsv4::tokenizer
