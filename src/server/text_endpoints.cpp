#include "server/text_endpoints.h"

#include "checkpoint/config.h"
#include "server/openai_request.h"
#include "server/openai_response.h"
#include "tokenizer/utf8.h"

namespace dsv4::server {
namespace {

using Json = nlohmann::ordered_json;

void Reply(http::ResponseWriter& w, const ApiResult<Json>& r, const http::HeaderList& headers) {
  if (!r.ok()) return (void)w.Send(ErrorResponse(r.error(), headers));
  w.Send(http::Response{200, "application/json", JsonText(r.value()), headers});
}

ApiResult<Json> Tokenize(const ServingState& s, const http::Request& req) {
  ApiResult<Json> body = ParseJsonBody(req.body, s.options->max_json_depth);
  if (!body.ok()) return body;
  ApiResult<TokenizeRequest> parsed = ParseTokenizeRequest(body.value());
  if (!parsed.ok()) return parsed.error();
  TokenizeRequest& t = parsed.value();
  if (t.chat) t.chat->template_options.format = s.chat_format;
  Result<std::vector<int32_t>> ids =
      t.content ? s.tokenizer->Encode(*t.content, {.add_bos = t.add_special,
                                                   .parse_special = t.parse_special})
                : tokenizer::EncodeChatPrompt(*s.tokenizer, t.chat->messages, t.chat->tools,
                                              t.chat->template_options);
  if (!ids.ok()) return FromStatus(ids.status(), t.content ? "content" : "messages");
  Json tokens = Json::array();
  for (int32_t id : *ids) {
    if (!t.with_pieces) {
      tokens.push_back(id);
      continue;
    }
    const std::string* bytes = s.tokenizer->TokenBytes(id);
    tokens.push_back({{"id", id}, {"piece", tokenizer::SanitizeUtf8(bytes ? *bytes : "")}});
  }
  return Json{{"tokens", std::move(tokens)},
              {"count", ids->size()},
              {"max_model_len", s.engine->config().max_position_embeddings}};
}

ApiResult<Json> Detokenize(const ServingState& s, const http::Request& req) {
  ApiResult<Json> body = ParseJsonBody(req.body, s.options->max_json_depth);
  if (!body.ok()) return body;
  ApiResult<std::vector<int32_t>> ids =
      ParseDetokenizeRequest(body.value(), s.tokenizer->vocab_size());
  if (!ids.ok()) return ids.error();
  Result<std::string> text = s.tokenizer->DecodeText(ids.value());
  if (!text.ok()) return FromStatus(text.status(), "tokens");
  return Json{{"content", *text}};
}

ApiResult<Json> ApplyTemplate(const ServingState& s, const http::Request& req) {
  ApiResult<Json> body = ParseJsonBody(req.body, s.options->max_json_depth);
  if (!body.ok()) return body;
  ApiResult<ChatRequest> chat = ParseChatRequest(body.value());
  if (!chat.ok()) return chat.error();
  ChatRequest& c = chat.value();
  c.template_options.format = s.chat_format;
  Result<std::string> prompt =
      tokenizer::RenderChatPrompt(c.messages, c.tools, c.template_options);
  if (!prompt.ok()) return FromStatus(prompt.status(), "messages");
  return Json{{"prompt", *prompt},
              {"chat_format", std::string(tokenizer::ChatFormatName(s.chat_format))}};
}

}  // namespace

void HandleTokenize(const ServingState& s, const http::Request& req, http::ResponseWriter& w,
                    const http::HeaderList& headers) {
  Reply(w, Tokenize(s, req), headers);
}

void HandleDetokenize(const ServingState& s, const http::Request& req, http::ResponseWriter& w,
                      const http::HeaderList& headers) {
  Reply(w, Detokenize(s, req), headers);
}

void HandleApplyTemplate(const ServingState& s, const http::Request& req,
                         http::ResponseWriter& w, const http::HeaderList& headers) {
  Reply(w, ApplyTemplate(s, req), headers);
}

}  // namespace dsv4::server
