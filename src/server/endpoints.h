// The two generation endpoints, POST /v1/completions and POST /v1/chat/completions, on top
// of a loaded model. Internal to the server module (server.cpp routes to them after the
// request policy and loading checks). Handlers run on the HTTP layer's worker threads with the
// whole request read; everything they share is in
// ServingState, immutable once the model is loaded (the atomics and the engine aside, which
// are thread-safe).
#pragma once

#include <memory>
#include <string>

#include "http/message.h"
#include "http/response_writer.h"
#include "server/generation.h"
#include "server/server.h"
#include "tokenizer/chat_format.h"
#include "tokenizer/tokenizer.h"

namespace dsv4::server {

// The engine owns the model's config, tokenizer and limits; the server keeps none of its own.
struct ServingState {
  const ServerOptions* options = nullptr;
  std::string model_id;  // what "model" must name
  std::unique_ptr<Engine> engine;
  const tokenizer::Tokenizer* tokenizer = nullptr;  // the engine's
  // The loaded checkpoint's chat format: V3.2 models speak DeepSeek-V3.2's encoding, V4
  // models V4's (every chat request is rendered and parsed in it).
  tokenizer::ChatFormat chat_format = tokenizer::ChatFormat::kV4;
  GenerationContext generation;  // points into the above and the server
};

// `e` as a response: its status and JSON body, plus `headers` (e.g. CORS) and Retry-After
// on 429/503, WWW-Authenticate on 401.
http::Response ErrorResponse(const ApiError& e, http::HeaderList headers = {});

// Each answers through `w` (JSON, or SSE when the request streams), adding `headers` to the
// response; a client that goes away cancels its request.
void HandleCompletions(const ServingState& s, const http::Request& req, http::ResponseWriter& w,
                       const http::HeaderList& headers);
void HandleChatCompletions(const ServingState& s, const http::Request& req,
                           http::ResponseWriter& w, const http::HeaderList& headers);

}  // namespace dsv4::server
