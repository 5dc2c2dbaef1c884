// Fuzzes the request path of `dsv4 serve` from raw bytes to an engine request: the HTTP head
// parser and body framing (Content-Length or chunked, fed in pieces whose sizes the input
// chooses), the JSON nesting limit, the OpenAI request mapping of both endpoints, the chat
// template, tokenization with the generated tiny tokenizer, and the engine's request check
// (/tokenize and /detokenize: their request mapping, encoding and decoding).
// Besides "no crash, no sanitizer report, no stack overflow", it aborts when a layer breaks
// its contract: a head that consumes more than it was given, a body past the limit, a parsed
// request the engine check would let through with an empty prompt.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "checkpoint/presets.h"
#include "dsv4/engine.h"
#include "engine/request_check.h"
#include "http/request_parser.h"
#include "kv/page_layout.h"
#include "server/openai_request.h"
#include "testing/tokenizer_generator.h"
#include "tokenizer/chat_format.h"
#include "tokenizer/tokenizer.h"

namespace {

constexpr int64_t kMaxBody = 1 << 20;

const dsv4::tokenizer::Tokenizer& Tiny() {
  static const std::unique_ptr<dsv4::tokenizer::Tokenizer> tok = [] {
    auto json = dsv4::fixtures::GenerateTinyTokenizerJson(dsv4::checkpoint::TinyV4Config().vocab_size);
    if (!json.ok()) std::abort();
    auto t = dsv4::tokenizer::Tokenizer::FromJson(*json, "tiny/tokenizer.json");
    if (!t.ok()) std::abort();
    return std::move(t).value();
  }();
  return *tok;
}

// The body as the connection would assemble it; false when the framing is refused.
bool ReadBody(const dsv4::http::RequestHead& head, std::string_view rest, uint8_t piece,
              std::string* body) {
  using dsv4::http::BodyFraming;
  if (head.framing == BodyFraming::kContentLength) {
    if (head.content_length > kMaxBody) return false;
    *body = std::string(rest.substr(0, static_cast<size_t>(head.content_length)));
    return true;
  }
  if (head.framing != BodyFraming::kChunked) return true;
  dsv4::http::ChunkedDecoder d(kMaxBody);
  std::string pending;
  const size_t step = piece == 0 ? rest.size() : piece;
  for (size_t fed = 0; fed < rest.size(); fed += step) {
    pending.append(rest.substr(fed, step));
    size_t used = 0;
    const auto s = d.Feed(pending, &used, body);
    if (used > pending.size()) std::abort();
    pending.erase(0, used);
    if (body->size() > static_cast<size_t>(kMaxBody)) std::abort();
    if (s == dsv4::http::ChunkedDecoder::State::kError) return false;
    if (s == dsv4::http::ChunkedDecoder::State::kDone) return true;
  }
  return false;  // the body never ended
}

void CheckEngineRequest(std::vector<int32_t> prompt, const dsv4::server::GenerationParams& p) {
  static const dsv4::checkpoint::ModelConfig config = dsv4::checkpoint::TinyV4Config();
  static const dsv4::kv::PageLayout layout(config, dsv4::kv::DefaultKvFormats(config.arch));
  dsv4::GenerationRequest r;
  r.prompt = std::move(prompt);
  r.sampling = p.sampling;
  r.stop.max_new_tokens = p.max_tokens.value_or(16);
  const dsv4::engine::RequestLimits limits{.vocab_size = config.vocab_size,
                                           .context = config.max_position_embeddings,
                                           .layout = &layout,
                                           .kv_budget_bytes = 1 << 30};
  const dsv4::RequestCheck check = dsv4::engine::ValidateRequest(r, limits);
  if (check.ok() && r.prompt.empty()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t piece = data[0];  // how the chunked body arrives
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  size_t scanned = 0;
  const dsv4::http::HeadParse p = dsv4::http::ParseRequestHead(input, {}, &scanned);
  if (p.kind != dsv4::http::HeadParse::Kind::kDone) return 0;
  if (p.consumed > input.size() || p.head.content_length < 0) std::abort();
  std::string body;
  if (!ReadBody(p.head, input.substr(p.consumed), piece, &body)) return 0;

  auto json = dsv4::server::ParseJsonBody(body, dsv4::kDefaultMaxJsonDepth);
  if (!json.ok()) return 0;
  if (p.head.path == "/tokenize") {
    auto t = dsv4::server::ParseTokenizeRequest(json.value());
    if (!t.ok()) return 0;
    if (t.value().content) {
      (void)Tiny().Encode(*t.value().content, {.add_bos = t.value().add_special,
                                               .parse_special = t.value().parse_special});
    } else {
      const auto& c = *t.value().chat;
      (void)dsv4::tokenizer::EncodeChatPrompt(Tiny(), c.messages, c.tools, c.template_options);
    }
    return 0;
  }
  if (p.head.path == "/detokenize") {
    auto ids = dsv4::server::ParseDetokenizeRequest(json.value(), Tiny().vocab_size());
    if (!ids.ok()) return 0;
    for (int32_t id : ids.value()) {
      if (id < 0 || id >= Tiny().vocab_size()) std::abort();  // the parser's contract
    }
    (void)Tiny().DecodeText(ids.value());
    return 0;
  }
  if (p.head.path == "/v1/chat/completions") {
    auto chat = dsv4::server::ParseChatRequest(json.value());
    if (!chat.ok()) return 0;
    const auto& c = chat.value();
    auto ids = dsv4::tokenizer::EncodeChatPrompt(Tiny(), c.messages, c.tools, c.template_options);
    if (ids.ok()) CheckEngineRequest(std::move(ids).value(), c.params);
    return 0;
  }
  auto completion = dsv4::server::ParseCompletionRequest(json.value());
  if (!completion.ok()) return 0;
  const auto& c = completion.value();
  std::vector<int32_t> prompt = c.prompt_tokens;
  if (c.prompt_text) {
    auto ids = Tiny().Encode(*c.prompt_text, {.add_bos = true, .parse_special = true});
    if (!ids.ok()) return 0;
    prompt = std::move(ids).value();
  }
  CheckEngineRequest(std::move(prompt), c.params);
  return 0;
}
