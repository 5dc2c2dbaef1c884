// dsv4 serve: an OpenAI-compatible HTTP server (cpp-httplib) in front of the Engine.
//
//   POST /v1/completions        text or token-id prompt -> text (SSE when "stream": true)
//   POST /v1/chat/completions   messages (+ tools) in DeepSeek-V4's chat format -> message,
//                               DSML tool calls parsed into OpenAI tool_calls
//   GET  /v1/models             the one served model (id = checkpoint folder name)
//   GET  /health                200 {"status": "ok"}, 503 while the model loads
//   GET  /metrics               Prometheus text (metrics.h)
//
// Errors are OpenAI-style JSON (api_error.h). Threads: httplib's pool runs the handlers,
// which only submit, cancel and read request streams; the engine thread owns all serving
// state. Start() binds the port and answers at once (503 for the API until LoadModel), so a
// client or load balancer can tell "loading" from "down".
//
// Thread safety: Stop() and the accessors may be called from any thread; Start, LoadModel
// and the destructor from the owning thread.
#pragma once

#include <memory>
#include <string>

#include "core/status.h"
#include "dsv4/engine.h"

namespace dsv4::server {

struct ServerOptions {
  std::string host = "127.0.0.1";  // loopback unless asked otherwise
  int port = 8080;                 // 0: any free port (see Server::port())
  std::string api_key;             // non-empty: /v1/* need "Authorization: Bearer <key>"
  int64_t max_body_bytes = 8 << 20;  // larger bodies get 413
  int64_t max_concurrent_requests = 64;  // generation requests held at once; more get 429
  double request_timeout_s = 600;   // a generation still running after this is cancelled (504)
  ModelFactory model;               // what LoadModel serves (e.g. runner::OpenModelFolder)
  EngineOptions engine;             // kv budget, batching, prefix caching, threads
};

class Server {
 public:
  // Checks the options, binds host:port and starts answering. IoError when the address
  // cannot be bound (in use, or not a local address); InvalidArgument for bad options.
  static Result<std::unique_ptr<Server>> Start(const ServerOptions& options);
  ~Server();  // Stop()

  // Starts the engine on options.model; the API answers 503 until this returns OK. The
  // config and tokenizer are the engine's (the checkpoint is opened once). FailedPrecondition
  // when the model has no tokenizer.json (the server speaks text); errors of Engine::Create
  // as they are.
  Status LoadModel();

  // Stops accepting, ends in-flight requests (streams get an error event, waiting handlers
  // a 503), joins every thread and stops the engine. Idempotent.
  void Stop();

  int port() const;
  std::string url() const;  // "http://HOST:PORT"
  // The engine, or nullptr before LoadModel (tests read its stats, pause it).
  Engine* engine();

 private:
  class Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dsv4::server
