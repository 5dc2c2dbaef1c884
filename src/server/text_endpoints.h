// The text endpoints, for tools that need the model's tokenizer and chat format without a
// generation (agents counting tokens, eval harnesses, proxies), in llama-server's shapes:
//
//   POST /tokenize        {"content": "text", "add_special": false, "parse_special": true,
//                          "with_pieces": false} or {"messages": [...], "tools": ...}
//                         -> {"tokens": [ids] | [{"id", "piece"}], "count", "max_model_len"}
//   POST /detokenize      {"tokens": [ids]} -> {"content": "text"} (ill-formed UTF-8 from
//                         partial characters replaced with U+FFFD)
//   POST /apply-template  an OpenAI chat body -> {"prompt": "the rendered chat prompt"}
//
// Errors are the API's (400 naming the field: ids outside the vocabulary, wrong types).
// Handlers run on the HTTP layer's workers; they share the immutable ServingState.
#pragma once

#include "http/message.h"
#include "http/response_writer.h"
#include "server/endpoints.h"

namespace dsv4::server {

void HandleTokenize(const ServingState& s, const http::Request& req, http::ResponseWriter& w,
                    const http::HeaderList& headers);
void HandleDetokenize(const ServingState& s, const http::Request& req, http::ResponseWriter& w,
                      const http::HeaderList& headers);
void HandleApplyTemplate(const ServingState& s, const http::Request& req,
                         http::ResponseWriter& w, const http::HeaderList& headers);

}  // namespace dsv4::server
