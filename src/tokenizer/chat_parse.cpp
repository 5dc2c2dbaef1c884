#include "tokenizer/chat_parse.h"

#include <map>

#include "tokenizer/python_json.h"
#include "tokenizer/tokenizer.h"

namespace dsv4::tokenizer {
namespace {

const std::string kInvokeStart = "<" + std::string(kDsmlToken) + "invoke";
const std::string kInvokeEnd = "</" + std::string(kDsmlToken) + "invoke";
const std::string kParamStart = "<" + std::string(kDsmlToken) + "parameter";
const std::string kParamEnd = "/" + std::string(kDsmlToken) + "parameter";

Status Malformed(const std::string& what) {
  return Status::InvalidArgument("model output: " + what);
}

// Shows a fragment of model output in an error message.
std::string Quote(std::string_view s) {
  std::string out(s.substr(0, 60));
  if (s.size() > 60) out += "...";
  return "'" + out + "'";
}

// _read_until_stop: the text from `*pos` to the earliest of `stops` (or to the end), and
// which stop ended it (nullptr: none). *pos moves past the stop.
struct Read {
  std::string_view text;
  const std::string* stop;
};
Read ReadUntil(std::string_view s, size_t* pos, std::initializer_list<const std::string*> stops) {
  size_t best = std::string_view::npos;
  const std::string* which = nullptr;
  for (const std::string* stop : stops) {
    const size_t at = s.find(*stop, *pos);
    if (at < best) {
      best = at;
      which = stop;
    }
  }
  const size_t begin = *pos;
  if (which == nullptr) {
    *pos = s.size();
    return {s.substr(begin), nullptr};
  }
  *pos = best + which->size();
  return {s.substr(begin, best - begin), which};
}

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// `^\s*name="(.*?)">\n$` of parse_tool_calls. Python's `$` also matches before a final
// "\n", which is what lets an invoke without parameters ("...\">\n\n</｜DSML｜invoke") parse.
bool ParseInvokeName(std::string_view s, std::string* name) {
  size_t i = 0;
  while (i < s.size() && IsSpace(s[i])) ++i;
  s.remove_prefix(i);
  constexpr std::string_view kPrefix = "name=\"";
  if (s.substr(0, kPrefix.size()) != kPrefix) return false;
  s.remove_prefix(kPrefix.size());
  const size_t end = s.find("\">\n");  // the non-greedy group stops at the first fit
  if (end == std::string_view::npos) return false;
  const std::string_view after = s.substr(end + 3);
  if (!after.empty() && after != "\n") return false;
  *name = std::string(s.substr(0, end));
  return true;
}

// `^ name="(.*?)" string="(true|false)">(.*?)<$` (DOTALL) of parse_tool_calls.
bool ParseParameter(std::string_view s, std::string* key, bool* is_string, std::string* value) {
  constexpr std::string_view kPrefix = " name=\"";
  if (s.substr(0, kPrefix.size()) != kPrefix) return false;
  s.remove_prefix(kPrefix.size());
  const size_t t = s.find("\" string=\"true\">");
  const size_t f = s.find("\" string=\"false\">");
  const size_t at = std::min(t, f);
  if (at == std::string_view::npos) return false;
  *key = std::string(s.substr(0, at));
  *is_string = at == t;
  s.remove_prefix(at + (*is_string ? 16 : 17));
  if (s.size() >= 2 && s.substr(s.size() - 2) == "<\n") {
    s.remove_suffix(2);
  } else if (!s.empty() && s.back() == '<') {
    s.remove_suffix(1);
  } else {
    return false;
  }
  *value = std::string(s);
  return true;
}

// decode_dsml_to_arguments: string values become JSON strings, other values are copied as
// written (the model was asked for JSON there).
std::string ArgumentsJson(
    const std::vector<std::pair<std::string, std::pair<std::string, bool>>>& args) {
  std::string out = "{";
  for (size_t i = 0; i < args.size(); ++i) {
    if (i > 0) out += ", ";
    const auto& [key, v] = args[i];
    out += PythonJsonDumps(key) + ": " + (v.second ? PythonJsonDumps(v.first) : v.first);
  }
  return out + "}";
}

std::string_view BlockName(ChatFormat format) {
  return format == ChatFormat::kV32 ? "function_calls" : "tool_calls";
}

// parse_tool_calls, from just after "\n\n<｜DSML｜BLOCK" to just after its closing tag.
Status ParseToolCalls(std::string_view s, size_t* pos, ChatFormat format,
                      std::vector<ToolCall>* calls) {
  const std::string calls_end =
      "</" + std::string(kDsmlToken) + std::string(BlockName(format)) + ">";
  while (true) {
    Read r = ReadUntil(s, pos, {&kInvokeStart, &calls_end});
    if (r.text != ">\n") {
      return Malformed("expected '>\\n' before a DSML invoke or the end of the tool calls, got " +
                       Quote(r.text));
    }
    if (r.stop == &calls_end) return Status::Ok();
    if (r.stop == nullptr) return Malformed("the tool-call block is not closed");

    r = ReadUntil(s, pos, {&kParamStart, &kInvokeEnd});
    ToolCall call;
    if (r.stop == nullptr || !ParseInvokeName(r.text, &call.name)) {
      return Malformed("bad DSML invoke header " + Quote(r.text));
    }
    std::vector<std::pair<std::string, std::pair<std::string, bool>>> args;
    while (r.stop == &kParamStart) {
      Read p = ReadUntil(s, pos, {&kParamEnd});
      std::string key, value;
      bool is_string = false;
      if (p.stop == nullptr || !ParseParameter(p.text, &key, &is_string, &value)) {
        return Malformed("bad DSML parameter " + Quote(p.text));
      }
      for (const auto& a : args) {
        if (a.first == key) return Malformed("duplicate parameter '" + key + "' in " + call.name);
      }
      args.push_back({key, {value, is_string}});
      r = ReadUntil(s, pos, {&kParamStart, &kInvokeEnd});
      if (r.text != ">\n") {
        return Malformed("expected '>\\n' after a DSML parameter, got " + Quote(r.text));
      }
      if (r.stop == nullptr) return Malformed("the DSML invoke of " + call.name + " is not closed");
    }
    call.arguments = ArgumentsJson(args);
    calls->push_back(std::move(call));
  }
}

// No control string may be left inside the content or the reasoning.
Status CheckNoControlStrings(std::string_view s, const char* field) {
  for (std::string_view token :
       {kBosToken, kEosToken, kThinkStartToken, kThinkEndToken, kDsmlToken}) {
    if (s.find(token) != std::string_view::npos) {
      return Malformed(std::string(field) + " contains '" + std::string(token) + "'");
    }
  }
  return Status::Ok();
}

}  // namespace

std::string DsmlCallsStart(ChatFormat format) {
  return "\n\n<" + std::string(kDsmlToken) + std::string(BlockName(format));
}

Result<ParsedCompletion> ParseCompletion(std::string_view text, ThinkingMode thinking,
                                         ChatFormat format) {
  const std::string calls_start = DsmlCallsStart(format);
  const std::string eos(kEosToken);
  const std::string think_end(kThinkEndToken);
  ParsedCompletion out;
  size_t pos = 0;
  if (thinking == ThinkingMode::kThinking) {
    Read r = ReadUntil(text, &pos, {&think_end, &calls_start, &eos});
    if (r.stop == &calls_start) return Malformed("a tool call inside the reasoning (no </think>)");
    out.reasoning_content = std::string(r.text);
    if (r.stop != &think_end) {  // cut off, or ended, while still thinking
      out.saw_eos = r.stop == &eos;
      if (out.saw_eos && pos != text.size()) return Malformed("text after the end of sentence");
      DSV4_RETURN_IF_ERROR(CheckNoControlStrings(out.reasoning_content, "reasoning_content"));
      return out;
    }
  }
  Read r = ReadUntil(text, &pos, {&eos, &calls_start});
  out.content = std::string(r.text);
  if (r.stop == &calls_start) {
    DSV4_RETURN_IF_ERROR(ParseToolCalls(text, &pos, format, &out.tool_calls));
    r = ReadUntil(text, &pos, {&eos});
    if (!r.text.empty()) return Malformed("text after the tool calls: " + Quote(r.text));
  }
  out.saw_eos = r.stop == &eos;
  if (pos != text.size()) {
    return Malformed("text after the end of sentence: " + Quote(text.substr(pos)));
  }
  DSV4_RETURN_IF_ERROR(CheckNoControlStrings(out.reasoning_content, "reasoning_content"));
  DSV4_RETURN_IF_ERROR(CheckNoControlStrings(out.content, "content"));
  return out;
}

LenientParse ParseCompletionLenient(std::string_view text, ThinkingMode thinking,
                                    ChatFormat format) {
  Result<ParsedCompletion> parsed = ParseCompletion(text, thinking, format);
  if (parsed.ok()) return {std::move(parsed).value(), Status::Ok()};
  LenientParse out{{}, parsed.status()};
  std::string_view rest = text;
  if (rest.size() >= kEosToken.size() && rest.substr(rest.size() - kEosToken.size()) == kEosToken) {
    rest.remove_suffix(kEosToken.size());
    out.message.saw_eos = true;
  }
  if (thinking == ThinkingMode::kThinking) {
    const size_t end = rest.find(kThinkEndToken);
    if (end == std::string_view::npos) {
      out.message.reasoning_content = std::string(rest);
      return out;
    }
    out.message.reasoning_content = std::string(rest.substr(0, end));
    rest.remove_prefix(end + kThinkEndToken.size());
  }
  out.message.content = std::string(rest);
  return out;
}

}  // namespace dsv4::tokenizer
