// Rules and their sources: docs/chat-format.md. Function names follow encoding_dsv4.py
// (merge_tool_messages, sort_tool_results_by_call_order, _drop_thinking_messages,
// render_message) so the two can be read side by side.
#include "tokenizer/chat_format_v4.h"

#include <algorithm>
#include <map>

#include "tokenizer/chat_segments.h"
#include "tokenizer/tokenizer.h"

namespace dsv4::tokenizer {
namespace {

using nlohmann::ordered_json;
using chat_internal::LastUserIndex;
using chat_internal::MessagePath;
using chat_internal::SegmentWriter;


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

// encoding_dsv4.py REASONING_EFFORT_PROMPTS["high"], put before the first message in
// thinking mode ("low" adds nothing).
constexpr std::string_view kReasoningEffortHigh =
    "Reasoning Effort: Absolute maximum with no shortcuts permitted.\n"
    "You MUST be very thorough in your thinking and comprehensively decompose the problem to "
    "resolve the root cause, rigorously stress-testing your logic against all potential paths, "
    "edge cases, and adversarial scenarios.\n"
    "Explicitly write out your entire deliberation process, documenting every intermediate "
    "step, considered alternative, and rejected hypothesis to ensure absolutely no assumption "
    "is left unchecked.\n\n";

// REASONING_EFFORT_PROMPTS["max"] (new in the 0731 release).
constexpr std::string_view kReasoningEffortMax =
    "Reasoning Effort: Beyond maximum \u2014 exhaustive, relentless, and uncompromising.\n"
    "You MUST reason with the utmost depth and rigor, leaving absolutely nothing to chance: "
    "exhaustively decompose the problem into its most fundamental components, trace every "
    "causal chain to its root, and resolve the underlying cause rather than any surface "
    "symptom.\n"
    "Do not stop reasoning until you have independently verified the solution from multiple "
    "angles and are certain that no assumption remains unchecked and no error remains "
    "undiscovered.\n\n";

constexpr std::string_view kActionTask = "action";

// A user message after merge_tool_messages: text and tool results in order.
struct Block {
  bool tool_result = false;
  std::string text;                // the text, or the tool result's content
  std::vector<ContentPart> parts;  // a tool result given as a list of parts
  std::string tool_use_id;         // tool results only
};

struct Msg {
  Role role = Role::kUser;
  int source = -1;  // index in the request's messages (-1: the synthetic tools message)
  std::string content;
  bool has_blocks = false;  // "content_blocks" present (every user message after merging)
  std::vector<Block> blocks;
  std::string reasoning;
  std::vector<ToolCall> tool_calls;
  std::vector<ordered_json> tools;  // function schemas attached to this message
  std::string task;
};

// A message's role, for LastUserIndex.
constexpr auto RoleOf = [](const Msg& m) { return m.role; };

// merge_tool_messages: a tool message becomes a tool_result block of a user message; runs of
// user and tool messages become one user message whose blocks are joined by blank lines. A
// user message with a task takes no later user text (tool results still join it).
std::vector<Msg> MergeToolMessages(std::vector<Msg> in) {
  std::vector<Msg> out;
  for (Msg& m : in) {
    const bool after_user = !out.empty() && out.back().role == Role::kUser && out.back().has_blocks;
    if (m.role == Role::kTool) {
      Block b = std::move(m.blocks.at(0));
      if (after_user) {
        out.back().blocks.push_back(std::move(b));
      } else {
        Msg user;
        user.role = Role::kUser;
        user.source = m.source;
        user.has_blocks = true;
        user.blocks.push_back(std::move(b));
        out.push_back(std::move(user));
      }
    } else if (m.role == Role::kUser) {
      Block b{false, m.content, {}, ""};
      if (after_user && out.back().task.empty()) {
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

// _drop_thinking_messages: before the last user message, assistant turns lose their reasoning
// and developer messages are removed.
std::vector<Msg> DropThinkingMessages(std::vector<Msg> in) {
  const int last_user = LastUserIndex(in, RoleOf);
  std::vector<Msg> out;
  for (int i = 0; i < static_cast<int>(in.size()); ++i) {
    Msg& m = in[i];
    if (m.role == Role::kDeveloper && i < last_user) continue;
    if (m.role == Role::kAssistant && i < last_user) m.reasoning.clear();
    out.push_back(std::move(m));
  }
  return out;
}

// A tool result given as a list: text parts as they are, any other part as
// "[Unsupported TYPE]", joined by blank lines (render_message, "tool_result" blocks).
void WriteToolResultParts(const std::vector<ContentPart>& parts, SegmentWriter* w) {
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) w->Template("\n\n");
    if (parts[i].type == "text") {
      w->Client(parts[i].text);
    } else {
      w->Template("[Unsupported ");
      w->Client(parts[i].type);
      w->Template("]");
    }
  }
}

void WriteUserBlocks(const Msg& m, SegmentWriter* w) {
  for (size_t i = 0; i < m.blocks.size(); ++i) {
    if (i > 0) w->Template("\n\n");
    const Block& b = m.blocks[i];
    if (!b.tool_result) {
      w->Client(b.text);
      continue;
    }
    w->Template("<tool_result>");
    if (b.parts.empty()) {
      w->Client(b.text);
    } else {
      WriteToolResultParts(b.parts, w);
    }
    w->Template("</tool_result>");
  }
}

struct RenderContext {
  const std::vector<Msg>& messages;
  const ChatTemplateOptions& options;
  bool drop_thinking;
  int last_user;
};

Status WriteAssistant(const RenderContext& ctx, int index, SegmentWriter* w) {
  const Msg& m = ctx.messages[index];
  // The answer to a task message is the task's output: no thinking part.
  const bool prev_has_task = index > 0 && !ctx.messages[index - 1].task.empty();
  if (ctx.options.thinking == ThinkingMode::kThinking && !prev_has_task &&
      (!ctx.drop_thinking || index > ctx.last_user)) {
    w->Client(m.reasoning);
    w->Template(kThinkEndToken);
  }
  w->Client(m.content);
  DSV4_RETURN_IF_ERROR(chat_internal::WriteDsmlCalls(
      "tool_calls", m.tool_calls, chat_internal::NonJsonArguments::kAsStringParameter,
      m.source, w));
  w->Template(kEosToken);
  return Status::Ok();
}

// The end of render_message: what hands the turn over when the next message is an assistant
// or latest_reminder one, or there is none. A task message ends with its task token (the
// action task after "<｜Assistant｜>" and the thinking token); a user or developer message
// with "<｜Assistant｜>" and <think> or </think>.
Status WriteTransition(const RenderContext& ctx, int index, SegmentWriter* w) {
  const Msg& m = ctx.messages[index];
  const bool thinking = ctx.options.thinking == ThinkingMode::kThinking;
  const int n = static_cast<int>(ctx.messages.size());
  if (index + 1 < n && ctx.messages[index + 1].role != Role::kAssistant &&
      ctx.messages[index + 1].role != Role::kLatestReminder) {
    return Status::Ok();
  }
  if (!m.task.empty()) {
    DSV4_ASSIGN_OR_RETURN(std::string token, V4TaskToken(m.task));
    if (m.task == kActionTask) {
      w->Template(kAssistantToken);
      w->Template(thinking ? kThinkStartToken : kThinkEndToken);
    }
    w->Template(token);
  } else if (m.role == Role::kUser || m.role == Role::kDeveloper) {
    w->Template(kAssistantToken);
    const bool open_thinking = thinking && (!ctx.drop_thinking || index >= ctx.last_user);
    w->Template(open_thinking ? kThinkStartToken : kThinkEndToken);
  }
  return Status::Ok();
}

// render_message: one message, then its transition.
Status WriteMessage(const RenderContext& ctx, int index, SegmentWriter* w) {
  const Msg& m = ctx.messages[index];
  if (index == 0 && ctx.options.thinking == ThinkingMode::kThinking) {
    if (ctx.options.reasoning_effort == ReasoningEffort::kHigh) w->Template(kReasoningEffortHigh);
    if (ctx.options.reasoning_effort == ReasoningEffort::kMax) w->Template(kReasoningEffortMax);
  }
  switch (m.role) {
    case Role::kSystem:
    case Role::kDeveloper:
      if (m.role == Role::kDeveloper) {
        if (m.content.empty()) {
          return Status::InvalidArgument(MessagePath(m.source, "content") +
                                         ": a developer message needs content");
        }
        w->Template(kUserToken);
      }
      w->Client(m.content);
      if (!m.tools.empty()) {
        w->Template("\n\n");
        chat_internal::WriteToolsSection(kToolsHead, m.tools, kToolsTail, w);
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
  return WriteTransition(ctx, index, w);
}

// The request's messages as the reference's dicts, each remembering its request index.
Result<std::vector<Msg>> ToMsgs(std::span<const ChatMessage> messages) {
  std::vector<Msg> msgs;
  msgs.reserve(messages.size() + 1);
  for (int i = 0; i < static_cast<int>(messages.size()); ++i) {
    const ChatMessage& cm = messages[i];
    Msg m;
    m.role = cm.role;
    m.source = i;
    m.reasoning = cm.reasoning_content;
    m.tool_calls = cm.tool_calls;
    m.task = cm.task;
    if (!m.task.empty()) {
      Result<std::string> token = V4TaskToken(m.task);
      if (!token.ok()) return token.status().WithContext(MessagePath(i, "task"));
    }
    if (cm.role == Role::kTool) {
      // The result travels as a block until MergeToolMessages places it.
      m.blocks.push_back(Block{true, cm.content, cm.content_parts, cm.tool_call_id});
    } else {
      DSV4_ASSIGN_OR_RETURN(m.content, chat_internal::FlattenTextContent(cm, i));
    }
    msgs.push_back(std::move(m));
  }
  return msgs;
}

}  // namespace

Result<std::string> V4TaskToken(std::string_view task) {
  for (std::string_view name : {"action", "query", "authority", "domain", "title", "read_url"}) {
    if (task == name) return "<｜" + std::string(name) + "｜>";
  }
  return Status::InvalidArgument(
      "expected one of action, query, authority, domain, title, read_url, got '" +
      std::string(task) + "'");
}

Result<std::vector<PromptSegment>> RenderV4ChatSegments(std::span<const ChatMessage> messages,
                                                        std::span<const ordered_json> functions,
                                                        const ChatTemplateOptions& options) {
  DSV4_ASSIGN_OR_RETURN(std::vector<Msg> msgs, ToMsgs(messages));
  // Request-level tools go to a leading system or developer message, or to a new empty
  // system message in front (vLLM's deepseek_v4 tokenizer mode does the same).
  if (!functions.empty()) {
    if (!msgs.empty() && (msgs[0].role == Role::kSystem || msgs[0].role == Role::kDeveloper)) {
      msgs[0].tools.assign(functions.begin(), functions.end());
    } else {
      Msg system;
      system.role = Role::kSystem;
      system.tools.assign(functions.begin(), functions.end());
      msgs.insert(msgs.begin(), std::move(system));
    }
  }
  msgs = MergeToolMessages(std::move(msgs));
  SortToolResultsByCallOrder(&msgs);
  // encode_messages: tools anywhere turn drop_thinking off.
  const bool drop_thinking = options.drop_thinking && functions.empty();
  if (options.thinking == ThinkingMode::kThinking && drop_thinking) {
    msgs = DropThinkingMessages(std::move(msgs));
  }
  const RenderContext ctx{msgs, options, drop_thinking, LastUserIndex(msgs, RoleOf)};
  SegmentWriter w;
  if (options.add_bos) w.Template(kBosToken);
  for (int i = 0; i < static_cast<int>(msgs.size()); ++i) {
    DSV4_RETURN_IF_ERROR(WriteMessage(ctx, i, &w));
  }
  return w.Take();
}

}  // namespace dsv4::tokenizer
