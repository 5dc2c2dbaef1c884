// dsv4 serve: an OpenAI-compatible HTTP server (on src/http) in front of the Engine.
//
//   POST /v1/completions        text or token-id prompt -> text (SSE when "stream": true)
//   POST /v1/chat/completions   messages (+ tools) in DeepSeek-V4's chat format -> message,
//                               DSML tool calls parsed into OpenAI tool_calls
//   GET  /v1/models             the one served model (id = checkpoint folder name)
//   POST /tokenize, /detokenize, /apply-template
//                               the model's tokenizer and chat format (text_endpoints.h)
//   GET  /health                200 {"status": "ok"}, 503 while the model loads
//   GET  /metrics               Prometheus text (metrics.h)
//
// Errors are OpenAI-style JSON (api_error.h). Threads: the HTTP layer (src/http) reads every
// request on one I/O thread with deadlines and limits, answers refusals and the GET routes
// there, and hands complete generation requests to its workers, which only submit, cancel and
// read request streams; the engine thread owns all serving state. Before a body is read a
// request passes the request policy (request_policy.h: Host, Origin, API key, Content-Type).
// Start() binds the port and answers at once (503 for the API until LoadModel), so a client or
// load balancer can tell "loading" from "down".
//
// Thread safety: Stop() and the accessors may be called from any thread; Start, LoadModel
// and the destructor from the owning thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/json_nesting.h"
#include "core/status.h"
#include "dsv4/engine.h"

namespace dsv4::server {

struct ServerOptions {
  std::string host = "127.0.0.1";  // loopback unless asked otherwise
  int port = 8080;                 // 0: any free port (see Server::port())
  std::string api_key;             // non-empty: /v1/* need "Authorization: Bearer <key>"
  // Host header values accepted ("*": any); empty: DefaultAllowedHosts(host).
  std::vector<std::string> allowed_hosts;
  // Browser origins allowed to call the API ("*": any); empty: requests with Origin get 403.
  std::vector<std::string> cors_origins;
  int64_t max_body_bytes = 8 << 20;  // larger bodies get 413, chunked ones while being read
  int max_json_depth = kDefaultMaxJsonDepth;  // deeper request JSON gets 400 before parsing
  int64_t max_concurrent_requests = 64;  // generation requests held at once; more get 429
  // Open connections in any state (reading, generating, idle keep-alive); more get 503 and
  // are closed. Bodies are held in memory while read: at most max_connections x
  // max_body_bytes.
  int max_connections = 128;
  int max_headers = 100;                // header fields per request; more: 431
  int64_t max_header_bytes = 32 << 10;  // request line + fields; more: 431
  // Whole-request read deadlines (not per byte): the head must arrive within header_timeout_s
  // of its first byte, the body within body_timeout_s of the head (else 408); a connection
  // without a request closes after idle_timeout_s.
  double header_timeout_s = 10;
  double body_timeout_s = 60;
  double idle_timeout_s = 5;
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

  // Stops accepting, drops idle and half-read connections at once, ends in-flight requests
  // (streams get an error event, waiting handlers a 503), joins every thread and stops the
  // engine. Idempotent.
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
