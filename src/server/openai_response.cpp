#include "server/openai_response.h"

#include <random>

namespace dsv4::server {
namespace {

using Json = nlohmann::ordered_json;

std::string RandomHex(int digits) {
  // Ids only need to be unique per server, not secret: a per-thread engine seeded once.
  thread_local std::mt19937_64 rng(std::random_device{}());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  uint64_t bits = 0;
  for (int i = 0; i < digits; ++i) {
    if (i % 16 == 0) bits = rng();
    out += kHex[bits & 15];
    bits >>= 4;
  }
  return out;
}

Json FinishReasonJson(std::string_view r) { return r.empty() ? Json() : Json(std::string(r)); }

}  // namespace

std::string NewResponseId(std::string_view prefix) {
  return std::string(prefix) + "-" + RandomHex(24);
}

std::string NewToolCallId() { return "call_" + RandomHex(24); }

Json UsageJson(const Usage& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens}};
}

Json CompletionResponse(const ResponseMeta& m, const std::string& text,
                        std::string_view finish_reason, const Usage& u) {
  Json j = CompletionChunk(m, text, finish_reason);
  j["usage"] = UsageJson(u);
  return j;
}

Json CompletionChunk(const ResponseMeta& m, const std::string& text,
                     std::string_view finish_reason) {
  return {{"id", m.id},
          {"object", "text_completion"},
          {"created", m.created},
          {"model", m.model},
          {"choices",
           Json::array({{{"index", 0},
                         {"text", text},
                         {"logprobs", nullptr},
                         {"finish_reason", FinishReasonJson(finish_reason)}}})}};
}

Json ToolCallsJson(const std::vector<tokenizer::ToolCall>& calls, bool with_index) {
  Json out = Json::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    Json c = {{"id", calls[i].id},
              {"type", "function"},
              {"function", {{"name", calls[i].name}, {"arguments", calls[i].arguments}}}};
    if (with_index) c["index"] = i;
    out.push_back(std::move(c));
  }
  return out;
}

Json ChatMessageJson(const ChatResult& r) {
  Json msg = {{"role", "assistant"}};
  msg["content"] = r.content.empty() && !r.tool_calls.empty() ? Json() : Json(r.content);
  if (!r.reasoning_content.empty()) msg["reasoning_content"] = r.reasoning_content;
  if (!r.tool_calls.empty()) msg["tool_calls"] = ToolCallsJson(r.tool_calls, false);
  return msg;
}

Json ChatResponse(const ResponseMeta& m, const ChatResult& r, std::string_view finish_reason,
                  const Usage& u) {
  return {{"id", m.id},
          {"object", "chat.completion"},
          {"created", m.created},
          {"model", m.model},
          {"choices", Json::array({{{"index", 0},
                                    {"message", ChatMessageJson(r)},
                                    {"logprobs", nullptr},
                                    {"finish_reason", FinishReasonJson(finish_reason)}}})},
          {"usage", UsageJson(u)}};
}

Json ChatChunk(const ResponseMeta& m, Json delta, std::string_view finish_reason) {
  return {{"id", m.id},
          {"object", "chat.completion.chunk"},
          {"created", m.created},
          {"model", m.model},
          {"choices", Json::array({{{"index", 0},
                                    {"delta", std::move(delta)},
                                    {"logprobs", nullptr},
                                    {"finish_reason", FinishReasonJson(finish_reason)}}})}};
}

Json UsageChunk(const ResponseMeta& m, std::string_view object, const Usage& u) {
  return {{"id", m.id},
          {"object", std::string(object)},
          {"created", m.created},
          {"model", m.model},
          {"choices", Json::array()},
          {"usage", UsageJson(u)}};
}

std::string JsonText(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string SseEvent(const Json& j) { return "data: " + JsonText(j) + "\n\n"; }

}  // namespace dsv4::server
