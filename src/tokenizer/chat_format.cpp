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

std::string RenderUserBlocks(const Msg& m) {
  std::string out;
  for (size_t i = 0; i < m.blocks.size(); ++i) {
    if (i > 0) out += "\n\n";
    const Block& b = m.blocks[i];
    out += b.tool_result ? "<tool_result>" + b.text + "</tool_result>" : b.text;
  }
  return out;
}

struct RenderContext {
  const std::vector<Msg>& messages;
  const ChatTemplateOptions& options;
  bool drop_thinking;
  int last_user;
};

Result<std::string> RenderAssistant(const RenderContext& ctx, int index) {
  const Msg& m = ctx.messages[index];
  std::string tool_calls;
  if (!m.tool_calls.empty()) {
    tool_calls = "\n\n<｜DSML｜tool_calls>\n";
    for (size_t i = 0; i < m.tool_calls.size(); ++i) {
      Result<std::string> invoke = RenderDsmlInvoke(m.tool_calls[i]);
      if (!invoke.ok()) {
        return invoke.status().WithContext("messages[" + std::to_string(index) + "].tool_calls[" +
                                           std::to_string(i) + "]");
      }
      if (i > 0) tool_calls += "\n";
      tool_calls += *invoke;
    }
    tool_calls += "\n</｜DSML｜tool_calls>";
  }
  std::string thinking;
  if (ctx.options.thinking == ThinkingMode::kThinking &&
      (!ctx.drop_thinking || index > ctx.last_user)) {
    thinking = m.reasoning + std::string(kThinkEndToken);
  }
  return thinking + m.content + tool_calls + std::string(kEosToken);
}

// render_message: one message, then the generation prefix when a user turn hands over to the
// assistant (the next message is an assistant one, or there is none).
Result<std::string> RenderMessage(const RenderContext& ctx, int index) {
  const Msg& m = ctx.messages[index];
  const bool thinking = ctx.options.thinking == ThinkingMode::kThinking;
  std::string out;
  if (index == 0 && thinking && ctx.options.reasoning_effort == ReasoningEffort::kMax) {
    out += kReasoningEffortMax;
  }
  switch (m.role) {
    case Role::kSystem:
      out += m.content;
      if (!m.tools.empty()) out += "\n\n" + RenderToolsSection(m.tools);
      break;
    case Role::kDeveloper:
      if (m.content.empty()) {
        return Status::InvalidArgument("messages[" + std::to_string(index) +
                                       "].content: a developer message needs content");
      }
      out += std::string(kUserToken) + m.content;
      if (!m.tools.empty()) out += "\n\n" + RenderToolsSection(m.tools);
      break;
    case Role::kUser:
      out += std::string(kUserToken) + (m.has_blocks ? RenderUserBlocks(m) : m.content);
      break;
    case Role::kLatestReminder:
      out += std::string(kLatestReminderToken) + m.content;
      break;
    case Role::kAssistant: {
      DSV4_ASSIGN_OR_RETURN(std::string a, RenderAssistant(ctx, index));
      out += a;
      break;
    }
    case Role::kTool:  // merged into user messages before rendering
      DSV4_CHECK_MSG(false, "tool message left after MergeToolMessages");
  }
  const int n = static_cast<int>(ctx.messages.size());
  if (index + 1 < n && ctx.messages[index + 1].role != Role::kAssistant &&
      ctx.messages[index + 1].role != Role::kLatestReminder) {
    return out;
  }
  if (m.role == Role::kUser || m.role == Role::kDeveloper) {
    out += kAssistantToken;
    const bool open_thinking = thinking && (!ctx.drop_thinking || index >= ctx.last_user);
    out += open_thinking ? kThinkStartToken : kThinkEndToken;
  }
  return out;
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
  std::string out(kToolsHead);
  for (size_t i = 0; i < functions.size(); ++i) {
    if (i > 0) out += "\n";
    out += PythonJsonDumps(functions[i]);
  }
  out += kToolsTail;
  return out;
}

Result<std::string> RenderDsmlInvoke(const ToolCall& call) {
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
  std::string out = "<｜DSML｜invoke name=\"" + call.name + "\">\n";
  bool first = true;
  for (auto it = args.begin(); it != args.end(); ++it) {
    if (!first) out += "\n";
    first = false;
    const bool is_string = it.value().is_string();
    out += "<｜DSML｜parameter name=\"" + it.key() + "\" string=\"" +
           (is_string ? "true" : "false") + "\">" +
           (is_string ? it.value().get<std::string>() : PythonJsonDumps(it.value())) +
           "</｜DSML｜parameter>";
  }
  out += "\n</｜DSML｜invoke>";
  return out;
}

Result<std::string> RenderChatPrompt(std::span<const ChatMessage> messages,
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
  std::string prompt = options.add_bos ? std::string(kBosToken) : std::string();
  for (int i = 0; i < static_cast<int>(msgs.size()); ++i) {
    DSV4_ASSIGN_OR_RETURN(std::string part, RenderMessage(ctx, i));
    prompt += part;
  }
  return prompt;
}

}  // namespace dsv4::tokenizer
