// The two generation endpoints, POST /v1/completions and POST /v1/chat/completions, on top
// of a loaded model. Internal to the server module (server.cpp routes to them after the API
// key and loading checks). Handlers run on httplib's threads; everything they share is in
// ServingState, immutable once the model is loaded (the atomics and the engine aside, which
// are thread-safe).
#pragma once

#include <memory>
#include <string>

#include <httplib.h>

#include "server/generation.h"
#include "server/server.h"
#include "tokenizer/tokenizer.h"

namespace dsv4::server {

// The engine owns the model's config, tokenizer and limits; the server keeps none of its own.
struct ServingState {
  const ServerOptions* options = nullptr;
  std::string model_id;  // what "model" must name
  std::unique_ptr<Engine> engine;
  const tokenizer::Tokenizer* tokenizer = nullptr;  // the engine's
  GenerationContext generation;  // points into the above and the server
};

// Writes `e` as the response (status and JSON body).
void SendError(httplib::Response& res, const ApiError& e);

void HandleCompletions(const ServingState& s, const httplib::Request& req,
                       httplib::Response& res);
void HandleChatCompletions(const ServingState& s, const httplib::Request& req,
                           httplib::Response& res);

}  // namespace dsv4::server
