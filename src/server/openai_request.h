// OpenAI request bodies -> plain structs, with every field's type and range checked. Pure
// functions; thread-safe. A field of the wrong type or out of range is a 400 naming the field
// (`param`); fields this engine cannot honour (n > 1, logprobs, penalties, echo, forced tool
// choice) are 400 too rather than silently ignored; unknown fields are ignored, as OpenAI's
// clients send many optional ones.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/json_nesting.h"
#include "sample/sampler.h"
#include "server/api_error.h"
#include "tokenizer/chat_format.h"

namespace dsv4::server {

// Fields both endpoints share.
struct GenerationParams {
  std::string model;  // empty: the request named none (the served model is used)
  // OpenAI's defaults: temperature 1, top_p 1. seed is only meaningful when `seeded`.
  sample::SamplingParams sampling{.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .seed = 0};
  bool seeded = false;
  std::optional<int64_t> max_tokens;  // absent: the endpoint's default
  std::vector<std::string> stop;      // non-empty strings
  bool ignore_eos = false;            // vLLM's extension: generate past the EOS token
  bool speculative = true;            // false: this request does not draft (same output)
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
};

struct CompletionRequest {
  GenerationParams params;
  // Exactly one of the two: text to encode (with BOS), or token ids used as given.
  std::optional<std::string> prompt_text;
  std::vector<int32_t> prompt_tokens;
};

struct ChatRequest {
  GenerationParams params;
  std::vector<tokenizer::ChatMessage> messages;  // at least one
  nlohmann::ordered_json tools;                  // null: none offered (or tool_choice "none")
  tokenizer::ChatTemplateOptions template_options;
};

// Request body text -> a JSON object. 400 for JSON nested deeper than `max_depth` (checked
// before parsing), malformed JSON, or a body that is not an object.
ApiResult<nlohmann::ordered_json> ParseJsonBody(std::string_view body,
                                                int max_depth = kDefaultMaxJsonDepth);

// POST /v1/completions.
ApiResult<CompletionRequest> ParseCompletionRequest(const nlohmann::ordered_json& body);

// POST /v1/chat/completions.
ApiResult<ChatRequest> ParseChatRequest(const nlohmann::ordered_json& body);

// POST /tokenize (llama-server's shape, plus vLLM's chat form): text `content`, or a chat
// (`messages`, `tools`, `chat_template_kwargs`, ... as for chat completions) rendered in the
// model's chat format.
struct TokenizeRequest {
  std::optional<std::string> content;  // or
  std::optional<ChatRequest> chat;
  bool add_special = false;   // content: prepend BOS (llama-server's default: false)
  bool parse_special = true;  // content: spelled special tokens become their ids
  bool with_pieces = false;   // answer {"id", "piece"} objects instead of bare ids
};
ApiResult<TokenizeRequest> ParseTokenizeRequest(const nlohmann::ordered_json& body);

// POST /detokenize: `tokens`, each in [0, vocab_size).
ApiResult<std::vector<int32_t>> ParseDetokenizeRequest(const nlohmann::ordered_json& body,
                                                       int32_t vocab_size);

}  // namespace dsv4::server
