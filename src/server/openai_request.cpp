#include "server/openai_request.h"

#include <limits>

#include "core/json_nesting.h"

namespace dsv4::server {
namespace {

using Json = nlohmann::ordered_json;
using MaybeError = std::optional<ApiError>;

#define DSV4_RETURN_IF_API_ERROR(expr)  \
  do {                                  \
    if (MaybeError e_ = (expr)) return *e_; \
  } while (0)

// The field, or nullptr when it is absent or null (OpenAI treats both as "not given").
const Json* Field(const Json& obj, const std::string& name) {
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

ApiError WrongType(const std::string& name, const char* expected, const Json& v) {
  return BadRequest("'" + name + "' must be " + expected + ", got " + v.type_name(), name);
}

ApiError Unsupported(const std::string& name, const std::string& what) {
  return BadRequest(what + " is not supported by this server", name, "unsupported_parameter");
}

MaybeError GetBool(const Json& obj, const std::string& name, bool* out) {
  const Json* v = Field(obj, name);
  if (v == nullptr) return std::nullopt;
  if (!v->is_boolean()) return WrongType(name, "a boolean", *v);
  *out = v->get<bool>();
  return std::nullopt;
}

// An integer in [lo, hi]; JSON floats (even 2.0) are refused, as OpenAI does.
MaybeError GetInt(const Json& obj, const std::string& name, int64_t lo, int64_t hi,
                  std::optional<int64_t>* out) {
  const Json* v = Field(obj, name);
  if (v == nullptr) return std::nullopt;
  if (!v->is_number_integer()) return WrongType(name, "an integer", *v);
  if (v->is_number_unsigned() &&
      v->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return BadRequest("'" + name + "' is too large: " + v->dump(), name);
  }
  const int64_t x = v->get<int64_t>();
  if (x < lo || x > hi) {
    const std::string range = hi == std::numeric_limits<int64_t>::max()
                                  ? ">= " + std::to_string(lo)
                                  : "in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
    return BadRequest("'" + name + "' must be " + range + ", got " + std::to_string(x), name);
  }
  *out = x;
  return std::nullopt;
}

MaybeError GetNumber(const Json& obj, const std::string& name, double* out) {
  const Json* v = Field(obj, name);
  if (v == nullptr) return std::nullopt;
  if (!v->is_number()) return WrongType(name, "a number", *v);
  *out = v->get<double>();
  return std::nullopt;
}

ApiError OutOfRange(const std::string& name, const std::string& range, double x) {
  Json j = x;
  return BadRequest("'" + name + "' must be " + range + ", got " + j.dump(), name);
}

MaybeError ParseStop(const Json& body, std::vector<std::string>* stop) {
  const Json* v = Field(body, "stop");
  if (v == nullptr) return std::nullopt;
  std::vector<const Json*> items;
  if (v->is_string()) {
    items.push_back(v);
  } else if (v->is_array()) {
    if (v->size() > 16) return BadRequest("'stop' has more than 16 strings", "stop");
    for (const Json& s : *v) items.push_back(&s);
  } else {
    return WrongType("stop", "a string or an array of strings", *v);
  }
  for (const Json* s : items) {
    if (!s->is_string()) return WrongType("stop", "a string or an array of strings", *s);
    if (s->get_ref<const std::string&>().empty()) {
      return BadRequest("'stop' strings must not be empty", "stop");
    }
    stop->push_back(s->get<std::string>());
  }
  return std::nullopt;
}

// Fields OpenAI defines that this engine cannot honour: refused, not silently dropped.
MaybeError RefuseUnsupported(const Json& body) {
  std::optional<int64_t> n;
  DSV4_RETURN_IF_API_ERROR(GetInt(body, "n", 1, std::numeric_limits<int64_t>::max(), &n));
  if (n && *n != 1) return Unsupported("n", "n > 1");
  std::optional<int64_t> best_of;
  DSV4_RETURN_IF_API_ERROR(GetInt(body, "best_of", 1, std::numeric_limits<int64_t>::max(),
                                  &best_of));
  if (best_of && *best_of != 1) return Unsupported("best_of", "best_of > 1");
  for (const char* name : {"presence_penalty", "frequency_penalty"}) {
    double x = 0;
    DSV4_RETURN_IF_API_ERROR(GetNumber(body, name, &x));
    if (x != 0) return Unsupported(name, std::string(name) + " != 0");
  }
  if (const Json* v = Field(body, "logit_bias"); v != nullptr && !v->empty()) {
    return Unsupported("logit_bias", "logit_bias");
  }
  if (const Json* v = Field(body, "logprobs"); v != nullptr && !(v->is_boolean() && !*v)) {
    return Unsupported("logprobs", "logprobs");
  }
  if (Field(body, "top_logprobs") != nullptr) return Unsupported("top_logprobs", "top_logprobs");
  return std::nullopt;
}

MaybeError ParseParams(const Json& body, const std::string& max_tokens_field,
                       GenerationParams* p) {
  if (const Json* v = Field(body, "model")) {
    if (!v->is_string()) return WrongType("model", "a string", *v);
    p->model = v->get<std::string>();
  }
  DSV4_RETURN_IF_API_ERROR(RefuseUnsupported(body));
  DSV4_RETURN_IF_API_ERROR(GetInt(body, max_tokens_field, 1,
                                  std::numeric_limits<int64_t>::max(), &p->max_tokens));
  double t = p->sampling.temperature;
  DSV4_RETURN_IF_API_ERROR(GetNumber(body, "temperature", &t));
  if (!(t >= 0 && t <= 2)) return OutOfRange("temperature", "in [0, 2]", t);
  p->sampling.temperature = static_cast<float>(t);
  double top_p = p->sampling.top_p;
  DSV4_RETURN_IF_API_ERROR(GetNumber(body, "top_p", &top_p));
  if (!(top_p > 0 && top_p <= 1)) return OutOfRange("top_p", "in (0, 1]", top_p);
  p->sampling.top_p = static_cast<float>(top_p);
  std::optional<int64_t> top_k;
  DSV4_RETURN_IF_API_ERROR(GetInt(body, "top_k", -1, std::numeric_limits<int32_t>::max(), &top_k));
  if (top_k) p->sampling.top_k = *top_k < 0 ? 0 : *top_k;  // -1: no limit (vLLM's spelling)
  if (const Json* v = Field(body, "seed")) {
    if (!v->is_number_integer()) return WrongType("seed", "an integer", *v);
    // Any 64-bit pattern is a seed; negative ones wrap, as numpy's do.
    p->sampling.seed = v->is_number_unsigned() ? v->get<uint64_t>()
                                               : static_cast<uint64_t>(v->get<int64_t>());
    p->seeded = true;
  }
  DSV4_RETURN_IF_API_ERROR(ParseStop(body, &p->stop));
  DSV4_RETURN_IF_API_ERROR(GetBool(body, "ignore_eos", &p->ignore_eos));
  DSV4_RETURN_IF_API_ERROR(GetBool(body, "speculative", &p->speculative));
  DSV4_RETURN_IF_API_ERROR(GetBool(body, "stream", &p->stream));
  if (const Json* v = Field(body, "stream_options")) {
    if (!v->is_object()) return WrongType("stream_options", "an object", *v);
    if (!p->stream) {
      return BadRequest("'stream_options' is only allowed when 'stream' is true",
                        "stream_options");
    }
    DSV4_RETURN_IF_API_ERROR(GetBool(*v, "include_usage", &p->include_usage));
  }
  return std::nullopt;
}

// One prompt as a token-id array.
// Token ids of field `name`: non-negative int32 values (the vocabulary is the engine's or
// the tokenizer's to check).
MaybeError ParseTokenArray(const Json& a, std::vector<int32_t>* out,
                           const std::string& name = "prompt") {
  if (a.empty()) return BadRequest("'" + name + "' is empty", name);
  for (const Json& t : a) {
    if (!t.is_number_integer()) return WrongType(name, "token ids", t);
    const int64_t id = t.is_number_unsigned() && t.get<uint64_t>() > INT32_MAX
                           ? int64_t{INT32_MAX} + 1
                           : t.get<int64_t>();
    if (id < 0 || id > INT32_MAX) {
      return BadRequest("'" + name + "' token id " + t.dump() + " is out of range", name);
    }
    out->push_back(static_cast<int32_t>(id));
  }
  return std::nullopt;
}

MaybeError ParsePrompt(const Json& body, CompletionRequest* r) {
  const Json* v = Field(body, "prompt");
  if (v == nullptr) return BadRequest("'prompt' is required", "prompt");
  // OpenAI also takes a batch (a list of prompts); one prompt per request here.
  if (v->is_array() && v->size() == 1 && (v->at(0).is_string() || v->at(0).is_array())) {
    v = &v->at(0);
  }
  if (v->is_string()) {
    if (v->get_ref<const std::string&>().empty()) return BadRequest("'prompt' is empty", "prompt");
    r->prompt_text = v->get<std::string>();
    return std::nullopt;
  }
  if (v->is_array()) {
    if (!v->empty() && (v->at(0).is_string() || v->at(0).is_array())) {
      return Unsupported("prompt", "more than one prompt per request");
    }
    return ParseTokenArray(*v, &r->prompt_tokens);
  }
  return WrongType("prompt", "a string or an array of token ids", *v);
}

// "content": a string, or an array of parts. Text parts are joined with newlines into
// `out->content` (vLLM's flattening) and kept in `out->content_parts`; other parts (an image)
// are accepted only in a tool result (`any_parts`), where DeepSeek-V4's encoder writes them
// as "[Unsupported TYPE]".
MaybeError ParseContent(const Json& m, const std::string& where, bool required, bool any_parts,
                        tokenizer::ChatMessage* out) {
  const Json* c = Field(m, "content");
  if (c == nullptr) {
    if (required) return BadRequest("'" + where + ".content' is required", where + ".content");
    return std::nullopt;
  }
  if (c->is_string()) {
    out->content = c->get<std::string>();
    return std::nullopt;
  }
  if (!c->is_array()) return WrongType(where + ".content", "a string or an array of parts", *c);
  bool first_text = true;
  for (size_t i = 0; i < c->size(); ++i) {
    const Json& part = c->at(i);
    const std::string pw = where + ".content[" + std::to_string(i) + "]";
    const Json* type = part.is_object() ? Field(part, "type") : nullptr;
    const Json* text = part.is_object() ? Field(part, "text") : nullptr;
    const bool is_text = type != nullptr && *type == "text";
    if (is_text && (text == nullptr || !text->is_string())) {
      return BadRequest("'" + pw + ".text' must be a string", pw + ".text");
    }
    if (!is_text && !(any_parts && type != nullptr && type->is_string())) {
      return BadRequest("'" + pw + "' must be {\"type\": \"text\", \"text\": string}; only "
                        "text parts are supported (a tool result may also carry other typed "
                        "parts)", pw);
    }
    tokenizer::ContentPart p{type->get<std::string>(), is_text ? text->get<std::string>() : ""};
    if (is_text) {
      if (!first_text) out->content += "\n";
      first_text = false;
      out->content += p.text;
    }
    out->content_parts.push_back(std::move(p));
  }
  return std::nullopt;
}

MaybeError ParseToolCalls(const Json& m, const std::string& where,
                          std::vector<tokenizer::ToolCall>* out) {
  const Json* calls = Field(m, "tool_calls");
  if (calls == nullptr) return std::nullopt;
  if (!calls->is_array()) return WrongType(where + ".tool_calls", "an array", *calls);
  for (size_t i = 0; i < calls->size(); ++i) {
    const Json& c = calls->at(i);
    const std::string cw = where + ".tool_calls[" + std::to_string(i) + "]";
    const Json* fn = c.is_object() ? Field(c, "function") : nullptr;
    const Json* name = fn != nullptr && fn->is_object() ? Field(*fn, "name") : nullptr;
    if (name == nullptr || !name->is_string() || name->get_ref<const std::string&>().empty()) {
      return BadRequest("'" + cw + ".function.name' must be a non-empty string",
                        cw + ".function.name");
    }
    tokenizer::ToolCall call;
    call.name = name->get<std::string>();
    if (const Json* id = Field(c, "id")) {
      if (!id->is_string()) return WrongType(cw + ".id", "a string", *id);
      call.id = id->get<std::string>();
    }
    if (const Json* args = Field(*fn, "arguments")) {
      // A JSON string per OpenAI; an already-parsed object is accepted too (as vLLM does).
      if (args->is_string()) {
        call.arguments = args->get<std::string>();
      } else if (args->is_object()) {
        call.arguments = args->dump();
      } else {
        return WrongType(cw + ".function.arguments", "a string", *args);
      }
    } else {
      call.arguments = "{}";
    }
    out->push_back(std::move(call));
  }
  return std::nullopt;
}

MaybeError ParseMessage(const Json& m, size_t index, tokenizer::ChatMessage* out) {
  const std::string where = "messages[" + std::to_string(index) + "]";
  if (!m.is_object()) return WrongType(where, "an object", m);
  const Json* role = Field(m, "role");
  if (role == nullptr || !role->is_string()) {
    return BadRequest("'" + where + ".role' must be a string", where + ".role");
  }
  Result<tokenizer::Role> r = tokenizer::ParseRole(role->get_ref<const std::string&>());
  if (!r.ok()) return BadRequest("'" + where + ".role': " + r.status().message(), where + ".role");
  out->role = *r;
  const bool assistant = out->role == tokenizer::Role::kAssistant;
  DSV4_RETURN_IF_API_ERROR(ParseContent(m, where, /*required=*/!assistant,
                                        /*any_parts=*/out->role == tokenizer::Role::kTool, out));
  if (const Json* task = Field(m, "task")) {
    // DeepSeek-V4's internal task tokens; the renderer checks the name.
    if (!task->is_string()) return WrongType(where + ".task", "a string", *task);
    out->task = task->get<std::string>();
  }
  if (assistant) {
    for (const char* name : {"reasoning_content", "reasoning"}) {
      if (const Json* v = Field(m, name)) {
        if (!v->is_string()) return WrongType(where + "." + name, "a string", *v);
        out->reasoning_content = v->get<std::string>();
        break;
      }
    }
    DSV4_RETURN_IF_API_ERROR(ParseToolCalls(m, where, &out->tool_calls));
  }
  if (out->role == tokenizer::Role::kTool) {
    if (const Json* id = Field(m, "tool_call_id")) {
      if (!id->is_string()) return WrongType(where + ".tool_call_id", "a string", *id);
      out->tool_call_id = id->get<std::string>();
    }
  }
  return std::nullopt;
}

MaybeError ParseTools(const Json& body, Json* tools) {
  const Json* v = Field(body, "tools");
  if (v != nullptr) {
    if (!v->is_array()) return WrongType("tools", "an array", *v);
    for (size_t i = 0; i < v->size(); ++i) {
      const Json& t = v->at(i);
      const std::string tw = "tools[" + std::to_string(i) + "]";
      const Json* type = t.is_object() ? Field(t, "type") : nullptr;
      if (type != nullptr && *type != "function") {
        return BadRequest("'" + tw + ".type' must be \"function\"", tw + ".type");
      }
      const Json* fn = t.is_object() ? Field(t, "function") : nullptr;
      const Json* name = fn != nullptr && fn->is_object() ? Field(*fn, "name") : nullptr;
      if (name == nullptr || !name->is_string() || name->get_ref<const std::string&>().empty()) {
        return BadRequest("'" + tw + ".function.name' must be a non-empty string",
                          tw + ".function.name");
      }
    }
    if (!v->empty()) *tools = *v;
  }
  if (const Json* choice = Field(body, "tool_choice")) {
    if (*choice == "none") {
      *tools = nullptr;  // the model is not told about them, so it cannot call them
    } else if (*choice != "auto") {
      // Forcing a call needs constrained decoding, which this engine does not have.
      return Unsupported("tool_choice", "tool_choice other than \"auto\" or \"none\"");
    }
  }
  return std::nullopt;
}

// DeepSeek's API names for the effort (api-docs.deepseek.com, "Thinking Mode"): minimal and
// low are low, medium, high and xhigh are high, max and ultra are max; "none" (OpenAI's)
// turns thinking off.
MaybeError ParseEffort(const Json& obj, const std::string& where, std::optional<bool>* on,
                       tokenizer::ChatTemplateOptions* o) {
  const Json* effort = Field(obj, "reasoning_effort");
  if (effort == nullptr) return std::nullopt;
  if (!effort->is_string()) return WrongType(where, "a string", *effort);
  const std::string& e = effort->get_ref<const std::string&>();
  using tokenizer::ReasoningEffort;
  if (e == "none") {
    *on = false;
    return std::nullopt;
  }
  if (e == "minimal" || e == "low") {
    o->reasoning_effort = ReasoningEffort::kLow;
  } else if (e == "medium" || e == "high" || e == "xhigh") {
    o->reasoning_effort = ReasoningEffort::kHigh;
  } else if (e == "max" || e == "ultra") {
    o->reasoning_effort = ReasoningEffort::kMax;
  } else {
    return BadRequest("'" + where + "' must be none, minimal, low, medium, high, xhigh, max or "
                      "ultra, got '" + e + "'", where);
  }
  if (!on->has_value()) *on = true;  // an effort asks for thinking unless a switch says no
  return std::nullopt;
}

// Thinking on or off, its effort and drop_thinking (docs/chat-format.md, "Mapping an OpenAI
// request"). An explicit switch - DeepSeek's {"thinking": {"type": "enabled"|"disabled"}} or
// chat_template_kwargs thinking / enable_thinking - wins over the effort's implied "on".
MaybeError ParseThinking(const Json& body, tokenizer::ChatTemplateOptions* o) {
  std::optional<bool> on;          // an explicit switch
  std::optional<bool> effort_on;   // what the effort implies
  if (const Json* t = Field(body, "thinking")) {
    const Json* type = t->is_object() ? Field(*t, "type") : nullptr;
    if (t->is_boolean()) {
      on = t->get<bool>();
    } else if (type != nullptr && (*type == "enabled" || *type == "disabled")) {
      on = *type == "enabled";
    } else {
      return BadRequest("'thinking' must be {\"type\": \"enabled\"} or {\"type\": "
                        "\"disabled\"}", "thinking");
    }
  }
  DSV4_RETURN_IF_API_ERROR(ParseEffort(body, "reasoning_effort", &effort_on, o));
  if (const Json* kw = Field(body, "chat_template_kwargs")) {
    if (!kw->is_object()) return WrongType("chat_template_kwargs", "an object", *kw);
    for (const char* name : {"thinking", "enable_thinking"}) {
      bool value = false;
      if (Field(*kw, name) == nullptr) continue;
      DSV4_RETURN_IF_API_ERROR(GetBool(*kw, name, &value));
      on = value;
    }
    DSV4_RETURN_IF_API_ERROR(
        ParseEffort(*kw, "chat_template_kwargs.reasoning_effort", &effort_on, o));
    DSV4_RETURN_IF_API_ERROR(GetBool(*kw, "drop_thinking", &o->drop_thinking));
  }
  const bool thinking = on.value_or(effort_on.value_or(false));
  o->thinking = thinking ? tokenizer::ThinkingMode::kThinking : tokenizer::ThinkingMode::kChat;
  return std::nullopt;
}

}  // namespace

ApiResult<nlohmann::ordered_json> ParseJsonBody(std::string_view body, int max_depth) {
  // Before the parser: nlohmann's values recurse once per level when built, copied and freed.
  if (Status deep = CheckJsonNesting(body, max_depth, "the request body"); !deep.ok()) {
    return BadRequest(deep.message() + " (--max-json-depth)", "", "json_too_deep");
  }
  Json j = Json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return BadRequest("the request body is not valid JSON");
  if (!j.is_object()) {
    return BadRequest(std::string("the request body must be a JSON object, got ") +
                      j.type_name());
  }
  return j;
}

ApiResult<CompletionRequest> ParseCompletionRequest(const nlohmann::ordered_json& body) {
  CompletionRequest r;
  DSV4_RETURN_IF_API_ERROR(ParsePrompt(body, &r));
  DSV4_RETURN_IF_API_ERROR(ParseParams(body, "max_tokens", &r.params));
  bool echo = false;
  DSV4_RETURN_IF_API_ERROR(GetBool(body, "echo", &echo));
  if (echo) return Unsupported("echo", "echo");
  if (const Json* s = Field(body, "suffix"); s != nullptr && !(s->is_string() && s->empty())) {
    return Unsupported("suffix", "suffix");
  }
  return r;
}

ApiResult<ChatRequest> ParseChatRequest(const nlohmann::ordered_json& body) {
  ChatRequest r;
  const Json* messages = Field(body, "messages");
  if (messages == nullptr) return BadRequest("'messages' is required", "messages");
  if (!messages->is_array()) return WrongType("messages", "an array", *messages);
  if (messages->empty()) return BadRequest("'messages' must not be empty", "messages");
  for (size_t i = 0; i < messages->size(); ++i) {
    tokenizer::ChatMessage m;
    DSV4_RETURN_IF_API_ERROR(ParseMessage(messages->at(i), i, &m));
    r.messages.push_back(std::move(m));
  }
  // The newer name wins when both are given.
  const bool new_name = Field(body, "max_completion_tokens") != nullptr;
  DSV4_RETURN_IF_API_ERROR(
      ParseParams(body, new_name ? "max_completion_tokens" : "max_tokens", &r.params));
  DSV4_RETURN_IF_API_ERROR(ParseTools(body, &r.tools));
  DSV4_RETURN_IF_API_ERROR(ParseThinking(body, &r.template_options));
  if (const Json* f = Field(body, "response_format")) {
    const Json* type = f->is_object() ? Field(*f, "type") : nullptr;
    if (type == nullptr || *type != "text") {
      return Unsupported("response_format", "response_format other than text");
    }
  }
  return r;
}

ApiResult<TokenizeRequest> ParseTokenizeRequest(const nlohmann::ordered_json& body) {
  TokenizeRequest r;
  DSV4_RETURN_IF_API_ERROR(GetBool(body, "add_special", &r.add_special));
  DSV4_RETURN_IF_API_ERROR(GetBool(body, "parse_special", &r.parse_special));
  DSV4_RETURN_IF_API_ERROR(GetBool(body, "with_pieces", &r.with_pieces));
  const Json* content = Field(body, "content");
  const Json* messages = Field(body, "messages");
  if ((content == nullptr) == (messages == nullptr)) {
    return BadRequest("give exactly one of 'content' (text) and 'messages' (a chat)",
                      content == nullptr ? "content" : "messages");
  }
  if (content != nullptr) {
    if (!content->is_string()) return WrongType("content", "a string", *content);
    r.content = content->get<std::string>();
    return r;
  }
  ApiResult<ChatRequest> chat = ParseChatRequest(body);
  if (!chat.ok()) return chat.error();
  r.chat = std::move(chat.value());
  return r;
}

ApiResult<std::vector<int32_t>> ParseDetokenizeRequest(const nlohmann::ordered_json& body,
                                                       int32_t vocab_size) {
  const Json* v = Field(body, "tokens");
  if (v == nullptr) return BadRequest("'tokens' is required", "tokens");
  if (!v->is_array()) return WrongType("tokens", "an array of token ids", *v);
  std::vector<int32_t> ids;
  if (v->empty()) return ids;
  DSV4_RETURN_IF_API_ERROR(ParseTokenArray(*v, &ids, "tokens"));
  for (int32_t id : ids) {
    if (id >= vocab_size) {
      return BadRequest("'tokens' token id " + std::to_string(id) +
                            " is outside the vocabulary [0, " + std::to_string(vocab_size) + ")",
                        "tokens");
    }
  }
  return ids;
}

}  // namespace dsv4::server
