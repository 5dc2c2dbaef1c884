// Rules and their sources: docs/chat-format.md. Function names follow encoding_dsv4.py
// (merge_tool_messages, sort_tool_results_by_call_order, _drop_thinking_messages,
// render_message) so the two can be read side by side.
#include "tokenizer/chat_format.h"

#include <algorithm>
#include <map>

#include "core/json_nesting.h"

#include "tokenizer/python_json.h"
#include "tokenizer/tokenizer.h"

namespace dsv4::tokenizer {
namespace {

using nlohmann::ordered_json;

// encoding_dsv4.py TOOLS_TEMPLATE with dsml_token, thinking_start_token and
// thinking_end_token filled in; the tool schemas go between the two parts.
constexpr std::string_view kToolsHead =
    "## Tools\n"
    "\n"
    "You have access to a set of tools to help answer the user's question. You can invoke "
    "tools by writing a \"<｜DSML｜tool_calls>\" block like the following:\n"
    "\n"
    "<｜DSML｜tool_calls>\n"
    "<｜DSML｜invoke name=\"$TOOL_NAME\">\n"
    "<｜DSML｜parameter name=\"$PARAMETER_NAME\" string=\"true|false\">$PARAMETER_VALUE"
    "</｜DSML｜parameter>\n"
    "...\n"
    "</｜DSML｜invoke>\n"
    "<｜DSML｜invoke name=\"$TOOL_NAME2\">\n"
    "...\n"
    "</｜DSML｜invoke>\n"
    "</｜DSML｜tool_calls>\n"
    "\n"
    "String parameters should be specified as is and set `string=\"true\"`. For all other "
    "types (numbers, booleans, arrays, objects), pass the value in JSON format and set "
    "`string=\"false\"`.\n"
    "\n"
    "If thinking_mode is enabled (triggered by <think>), you MUST output your complete "
    "reasoning inside <think>...</think> BEFORE any tool calls or final response.\n"
    "\n"
    "Otherwise, output directly after </think> with tool calls or final response.\n"
    "\n"
    "### Available Tool Schemas\n"
    "\n";
constexpr std::string_view kToolsTail =
    "\n"
    "\n"
    "You MUST strictly follow the above defined tool name and parameter schemas to invoke "
    "tool calls.\n";

// encoding_dsv4.py REASONING_EFFORT_MAX, put before the first message in thinking mode.
constexpr std::string_view kReasoningEffortMax =
    "Reasoning Effort: Absolute maximum with no shortcuts permitted.\n"
    "You MUST be very thorough in your thinking and comprehensively decompose the problem to "
    "resolve the root cause, rigorously stress-testing your logic against all potential paths, "
    "edge cases, and adversarial scenarios.\n"
    "Explicitly write out your entire deliberation process, documenting every intermediate "
    "step, considered alternative, and rejected hypothesis to ensure absolutely no assumption "
    "is left unchecked.\n\n";

// A user message after merge_tool_messages: text and tool results in order.
struct Block {
  bool tool_result = false;
  std::string text;         // the text, or the tool result's content
  std::string tool_use_id;  // tool results only
};

struct Msg {
  Role role = Role::kUser;
  std::string content;
  bool has_blocks = false;  // "content_blocks" present (every user message after merging)
  std::vector<Block> blocks;
  std::string reasoning;
  std::vector<ToolCall> tool_calls;
  std::vector<ordered_json> tools;  // function schemas attached to this message
};

// Collects a prompt as segments; neighbouring pieces from the same source share one segment.
class SegmentWriter {
 public:
  void Template(std::string_view text) { Add(text, false); }
  void Client(std::string_view text) { Add(text, true); }
  std::vector<PromptSegment> Take() { return std::move(segments_); }

 private:
  void Add(std::string_view text, bool client) {
    if (text.empty()) return;
    if (segments_.empty() || segments_.back().client != client) {
      segments_.push_back(PromptSegment{std::string(), client});
    }
    segments_.back().text += text;
  }
  std::vector<PromptSegment> segments_;
};

std::string Join(const std::vector<PromptSegment>& segments) {
  std::string out;
  for (const PromptSegment& s : segments) out += s.text;
  return out;
}

// merge_tool_messages: a tool message becomes a tool_result block of a user message; runs of
// user and tool messages become one user message whose blocks are joined by blank lines.
std::vector<Msg> MergeToolMessages(std::vector<Msg> in) {
  std::vector<Msg> out;
  for (Msg& m : in) {
    const bool after_user = !out.empty() && out.back().role == Role::kUser && out.back().has_blocks;
    if (m.role == Role::kTool) {
      std::string call_id = m.blocks.empty() ? std::string() : m.blocks[0].tool_use_id;
      Block b{true, std::move(m.content), std::move(call_id)};
      if (after_user) {
        out.back().blocks.push_back(std::move(b));
      } else {
        Msg user;
        user.role = Role::kUser;
        user.has_blocks = true;
        user.blocks.push_back(std::move(b));
        out.push_back(std::move(user));
      }
    } else if (m.role == Role::kUser) {
      Block b{false, m.content, ""};
      if (after_user) {
        out.back().blocks.push_back(std::move(b));
      } else {
        m.has_blocks = true;
        m.blocks.clear();
        m.blocks.push_back(std::move(b));
        out.push_back(std::move(m));
      }
    } else {
      out.push_back(std::move(m));
    }
  }
  return out;
}

// sort_tool_results_by_call_order: tool results follow the order of the calls of the latest
// assistant message with tool calls (a stable sort; unknown ids sort as position 0).
void SortToolResultsByCallOrder(std::vector<Msg>* messages) {
  std::map<std::string, size_t> order;
  for (Msg& m : *messages) {
    if (m.role == Role::kAssistant && !m.tool_calls.empty()) {
      order.clear();
      for (size_t i = 0; i < m.tool_calls.size(); ++i) {
        if (!m.tool_calls[i].id.empty()) order[m.tool_calls[i].id] = i;
      }
    } else if (m.role == Role::kUser && m.has_blocks) {
      std::vector<Block> results;
      for (const Block& b : m.blocks) {
        if (b.tool_result) results.push_back(b);
      }
      if (results.size() <= 1 || order.empty()) continue;
      auto key = [&](const Block& b) {
        auto it = order.find(b.tool_use_id);
        return it == order.end() ? size_t{0} : it->second;
      };
      std::stable_sort(results.begin(), results.end(),
                       [&](const Block& a, const Block& b) { return key(a) < key(b); });
      size_t next = 0;
      for (Block& b : m.blocks) {
        if (b.tool_result) b = results[next++];
      }
    }
  }
}

int LastUserIndex(const std::vector<Msg>& messages) {
  for (int i = static_cast<int>(messages.size()) - 1; i >= 0; --i) {
    if (messages[i].role == Role::kUser || messages[i].role == Role::kDeveloper) return i;
  }
  return -1;
}

// _drop_thinking_messages: before the last user message, assistant turns lose their reasoning
// and developer messages are removed.
std::vector<Msg> DropThinkingMessages(std::vector<Msg> in) {
  const int last_user = LastUserIndex(in);
  std::vector<Msg> out;
  for (int i = 0; i < static_cast<int>(in.size()); ++i) {
    Msg& m = in[i];
    if (m.role == Role::kDeveloper && i < last_user) continue;
    if (m.role == Role::kAssistant && i < last_user) m.reasoning.clear();
    out.push_back(std::move(m));
  }
  return out;
}

void WriteUserBlocks(const Msg& m, SegmentWriter* w) {
  for (size_t i = 0; i < m.blocks.size(); ++i) {
    if (i > 0) w->Template("\n\n");
    const Block& b = m.blocks[i];
    if (b.tool_result) w->Template("<tool_result>");
    w->Client(b.text);
    if (b.tool_result) w->Template("</tool_result>");
  }
}

// The "## Tools" section: the template around one client-written schema line per function.
void WriteToolsSection(std::span<const ordered_json> functions, SegmentWriter* w) {
  w->Template(kToolsHead);
  for (size_t i = 0; i < functions.size(); ++i) {
    if (i > 0) w->Template("\n");
    w->Client(PythonJsonDumps(functions[i]));
  }
  w->Template(kToolsTail);
}

// encode_arguments_to_dsml: arguments that do not parse as JSON become one string parameter
// named "arguments". The tool name, the keys and the values are the client's.
Status WriteDsmlInvoke(const ToolCall& call, SegmentWriter* w) {
  // encode_arguments_to_dsml: arguments that do not parse as JSON become one string parameter
  // named "arguments". A string inside a request: its nesting is checked here, before the
  // parser (and the recursive PythonJsonDumps) sees it.
  DSV4_RETURN_IF_ERROR(CheckJsonNesting(call.arguments, kDefaultMaxJsonDepth, "arguments"));
  ordered_json args;
  try {
    args = ordered_json::parse(call.arguments);
  } catch (const ordered_json::exception&) {
    args = ordered_json{{"arguments", call.arguments}};
  }
  if (!args.is_object()) {
    return Status::InvalidArgument("arguments: expected a JSON object, got " +
                                   call.arguments.substr(0, 80));
  }
  w->Template("<｜DSML｜invoke name=\"");
  w->Client(call.name);
  w->Template("\">\n");
  bool first = true;
  for (auto it = args.begin(); it != args.end(); ++it) {
    if (!first) w->Template("\n");
    first = false;
    const bool is_string = it.value().is_string();
    w->Template("<｜DSML｜parameter name=\"");
    w->Client(it.key());
    w->Template(is_string ? "\" string=\"true\">" : "\" string=\"false\">");
    w->Client(is_string ? it.value().get<std::string>() : PythonJsonDumps(it.value()));
    w->Template("</｜DSML｜parameter>");
  }
  w->Template("\n</｜DSML｜invoke>");
  return Status::Ok();
}

struct RenderContext {
  const std::vector<Msg>& messages;
  const ChatTemplateOptions& options;
  bool drop_thinking;
  int last_user;
};

Status WriteAssistant(const RenderContext& ctx, int index, SegmentWriter* w) {
  const Msg& m = ctx.messages[index];
  if (ctx.options.thinking == ThinkingMode::kThinking &&
      (!ctx.drop_thinking || index > ctx.last_user)) {
    w->Client(m.reasoning);
    w->Template(kThinkEndToken);
  }
  w->Client(m.content);
  if (!m.tool_calls.empty()) {
    w->Template("\n\n<｜DSML｜tool_calls>\n");
    for (size_t i = 0; i < m.tool_calls.size(); ++i) {
      if (i > 0) w->Template("\n");
      Status invoke = WriteDsmlInvoke(m.tool_calls[i], w);
      if (!invoke.ok()) {
        return invoke.WithContext("messages[" + std::to_string(index) + "].tool_calls[" +
                                  std::to_string(i) + "]");
      }
    }
    w->Template("\n</｜DSML｜tool_calls>");
  }
  w->Template(kEosToken);
  return Status::Ok();
}

// render_message: one message, then the generation prefix when a user turn hands over to the
// assistant (the next message is an assistant one, or there is none).
Status WriteMessage(const RenderContext& ctx, int index, SegmentWriter* w) {
  const Msg& m = ctx.messages[index];
  const bool thinking = ctx.options.thinking == ThinkingMode::kThinking;
  if (index == 0 && thinking && ctx.options.reasoning_effort == ReasoningEffort::kMax) {
    w->Template(kReasoningEffortMax);
  }
  switch (m.role) {
    case Role::kSystem:
    case Role::kDeveloper:
      if (m.role == Role::kDeveloper) {
        if (m.content.empty()) {
          return Status::InvalidArgument("messages[" + std::to_string(index) +
                                         "].content: a developer message needs content");
        }
        w->Template(kUserToken);
      }
      w->Client(m.content);
      if (!m.tools.empty()) {
        w->Template("\n\n");
        WriteToolsSection(m.tools, w);
      }
      break;
    case Role::kUser:
      w->Template(kUserToken);
      if (m.has_blocks) {
        WriteUserBlocks(m, w);
      } else {
        w->Client(m.content);
      }
      break;
    case Role::kLatestReminder:
      w->Template(kLatestReminderToken);
      w->Client(m.content);
      break;
    case Role::kAssistant:
      DSV4_RETURN_IF_ERROR(WriteAssistant(ctx, index, w));
      break;
    case Role::kTool:  // merged into user messages before rendering
      DSV4_CHECK_MSG(false, "tool message left after MergeToolMessages");
  }
  const int n = static_cast<int>(ctx.messages.size());
  if (index + 1 < n && ctx.messages[index + 1].role != Role::kAssistant &&
      ctx.messages[index + 1].role != Role::kLatestReminder) {
    return Status::Ok();
  }
  if (m.role == Role::kUser || m.role == Role::kDeveloper) {
    w->Template(kAssistantToken);
    const bool open_thinking = thinking && (!ctx.drop_thinking || index >= ctx.last_user);
    w->Template(open_thinking ? kThinkStartToken : kThinkEndToken);
  }
  return Status::Ok();
}

// tools_from_openai_format: [{"type": "function", "function": F}, ...] -> [F, ...].
Result<std::vector<ordered_json>> ToolFunctions(const ordered_json& tools) {
  std::vector<ordered_json> functions;
  if (tools.is_null()) return functions;
  if (!tools.is_array()) {
    return Status::InvalidArgument("tools: expected a list, got " + tools.dump().substr(0, 80));
  }
  for (size_t i = 0; i < tools.size(); ++i) {
    const ordered_json& t = tools[i];
    if (!t.is_object() || !t.contains("function") || !t.at("function").is_object()) {
      return Status::InvalidArgument("tools[" + std::to_string(i) +
                                     "]: expected {\"type\": \"function\", \"function\": {...}}, " +
                                     "got " + t.dump().substr(0, 80));
    }
    functions.push_back(t.at("function"));
  }
  return functions;
}

}  // namespace

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

std::string RenderToolsSection(std::span<const ordered_json> functions) {
  SegmentWriter w;
  WriteToolsSection(functions, &w);
  return Join(w.Take());
}

Result<std::string> RenderDsmlInvoke(const ToolCall& call) {
  SegmentWriter w;
  DSV4_RETURN_IF_ERROR(WriteDsmlInvoke(call, &w));
  return Join(w.Take());
}

Result<std::vector<PromptSegment>> RenderChatSegments(std::span<const ChatMessage> messages,
                                                      const ordered_json& tools,
                                                      const ChatTemplateOptions& options) {
  DSV4_ASSIGN_OR_RETURN(std::vector<ordered_json> functions, ToolFunctions(tools));
  std::vector<Msg> msgs;
  msgs.reserve(messages.size() + 1);
  for (const ChatMessage& cm : messages) {
    Msg m;
    m.role = cm.role;
    m.content = cm.content;
    m.reasoning = cm.reasoning_content;
    m.tool_calls = cm.tool_calls;
    // A tool message carries its call id in a block until MergeToolMessages uses it.
    if (cm.role == Role::kTool) m.blocks.push_back(Block{true, "", cm.tool_call_id});
    msgs.push_back(std::move(m));
  }
  // Request-level tools go to a leading system or developer message, or to a new empty
  // system message in front (vLLM's deepseek_v4 tokenizer mode does the same).
  if (!functions.empty()) {
    if (!msgs.empty() && (msgs[0].role == Role::kSystem || msgs[0].role == Role::kDeveloper)) {
      msgs[0].tools = functions;
    } else {
      Msg system;
      system.role = Role::kSystem;
      system.tools = functions;
      msgs.insert(msgs.begin(), std::move(system));
    }
  }
  msgs = MergeToolMessages(std::move(msgs));
  SortToolResultsByCallOrder(&msgs);
  const bool drop_thinking = options.drop_thinking && functions.empty();
  if (options.thinking == ThinkingMode::kThinking && drop_thinking) {
    msgs = DropThinkingMessages(std::move(msgs));
  }
  const RenderContext ctx{msgs, options, drop_thinking, LastUserIndex(msgs)};
  SegmentWriter w;
  if (options.add_bos) w.Template(kBosToken);
  for (int i = 0; i < static_cast<int>(msgs.size()); ++i) {
    DSV4_RETURN_IF_ERROR(WriteMessage(ctx, i, &w));
  }
  return w.Take();
}

Result<std::string> RenderChatPrompt(std::span<const ChatMessage> messages,
                                     const ordered_json& tools,
                                     const ChatTemplateOptions& options) {
  DSV4_ASSIGN_OR_RETURN(std::vector<PromptSegment> segments,
                        RenderChatSegments(messages, tools, options));
  return Join(segments);
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
