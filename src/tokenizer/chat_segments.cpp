#include "tokenizer/chat_segments.h"

#include "core/json_nesting.h"
#include "tokenizer/python_json.h"

namespace dsv4::tokenizer::chat_internal {

using nlohmann::ordered_json;

void SegmentWriter::Add(std::string_view text, bool client) {
  if (text.empty()) return;
  if (segments_.empty() || segments_.back().client != client) {
    segments_.push_back(PromptSegment{std::string(), client});
  }
  segments_.back().text += text;
}

std::string JoinSegments(const std::vector<PromptSegment>& segments) {
  std::string out;
  for (const PromptSegment& s : segments) out += s.text;
  return out;
}

std::string MessagePath(int index, std::string_view field) {
  std::string out = "messages[" + std::to_string(index) + "]";
  if (!field.empty()) out += "." + std::string(field);
  return out;
}

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

void WriteToolsSection(std::string_view head, std::span<const ordered_json> functions,
                       std::string_view tail, SegmentWriter* w) {
  w->Template(head);
  for (size_t i = 0; i < functions.size(); ++i) {
    if (i > 0) w->Template("\n");
    w->Client(PythonJsonDumps(functions[i]));
  }
  w->Template(tail);
}

Status WriteDsmlInvoke(const ToolCall& call, NonJsonArguments non_json, SegmentWriter* w) {
  // A string inside a request: its nesting is checked here, before the parser (and the
  // recursive PythonJsonDumps) sees it.
  DSV4_RETURN_IF_ERROR(CheckJsonNesting(call.arguments, kDefaultMaxJsonDepth, "arguments"));
  ordered_json args;
  try {
    args = ordered_json::parse(call.arguments);
  } catch (const ordered_json::exception&) {
    if (non_json == NonJsonArguments::kError) {
      return Status::InvalidArgument("arguments: expected JSON text of an object, got " +
                                     call.arguments.substr(0, 80));
    }
    args = ordered_json{{"arguments", call.arguments}};
  }
  if (!args.is_object()) {
    return Status::InvalidArgument("arguments: expected a JSON object, got " +
                                   call.arguments.substr(0, 80));
  }
  // The tool name, the keys and the values are the client's.
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

Status WriteDsmlCalls(std::string_view block, std::span<const ToolCall> calls,
                      NonJsonArguments non_json, int index, SegmentWriter* w) {
  if (calls.empty()) return Status::Ok();
  const std::string name(block);
  w->Template("\n\n<｜DSML｜" + name + ">\n");
  for (size_t i = 0; i < calls.size(); ++i) {
    if (i > 0) w->Template("\n");
    Status invoke = WriteDsmlInvoke(calls[i], non_json, w);
    if (!invoke.ok()) {
      return invoke.WithContext(MessagePath(index, "tool_calls[" + std::to_string(i) + "]"));
    }
  }
  w->Template("\n</｜DSML｜" + name + ">");
  return Status::Ok();
}

Result<std::string> FlattenTextContent(const ChatMessage& m, int index) {
  if (m.content_parts.empty()) return m.content;
  std::string out;
  for (size_t j = 0; j < m.content_parts.size(); ++j) {
    const ContentPart& part = m.content_parts[j];
    if (part.type != "text") {
      return Status::InvalidArgument(
          MessagePath(index, "content[" + std::to_string(j) + "]") +
          ": only text parts are supported here (this model reads text), got type '" +
          part.type + "'");
    }
    if (j > 0) out += "\n";
    out += part.text;
  }
  return out;
}

}  // namespace dsv4::tokenizer::chat_internal
