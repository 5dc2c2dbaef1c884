#include "server/server.h"

#include <csignal>
#include <ctime>
#include <mutex>
#include <optional>
#include <thread>

#include "checkpoint/config.h"
#include "http/http_server.h"
#include "server/endpoints.h"
#include "server/openai_response.h"
#include "server/request_policy.h"
#include "server/text_endpoints.h"

namespace dsv4::server {
namespace {

using Json = nlohmann::ordered_json;

// Handler threads beyond the generation slots, for the requests that end quickly (429s,
// 400s): a generation holds its thread until it ends.
constexpr int64_t kExtraHandlerThreads = 8;
constexpr int64_t kMaxConcurrentLimit = 4096;
constexpr int kMaxConnectionsLimit = 65536;

enum class Route {
  kNone, kHealth, kMetrics, kModels, kModel, kCompletions, kChat,
  kTokenize, kDetokenize, kApplyTemplate,
};

Route FindRoute(std::string_view path) {
  if (path == "/health") return Route::kHealth;
  if (path == "/metrics") return Route::kMetrics;
  if (path == "/v1/models") return Route::kModels;
  if (path.size() > 11 && path.substr(0, 11) == "/v1/models/") return Route::kModel;
  if (path == "/v1/completions") return Route::kCompletions;
  if (path == "/v1/chat/completions") return Route::kChat;
  if (path == "/tokenize") return Route::kTokenize;
  if (path == "/detokenize") return Route::kDetokenize;
  if (path == "/apply-template") return Route::kApplyTemplate;
  return Route::kNone;
}

bool IsPost(Route r) {
  return r == Route::kCompletions || r == Route::kChat || r == Route::kTokenize ||
         r == Route::kDetokenize || r == Route::kApplyTemplate;
}

ApiError Loading() {
  return ApiError{503, "the model is loading; retry shortly", "service_unavailable", "",
                  "model_loading"};
}

ApiError ShuttingDown() {
  return ApiError{503, "the server is shutting down", "service_unavailable", "",
                  "shutting_down"};
}

// The OpenAI-style error for a refusal of the HTTP layer itself (malformed, too large, late).
http::Response HttpLayerError(int status, const std::string& message) {
  std::string code;
  switch (status) {
    case 408: code = "request_timeout"; break;
    case 413: code = "request_too_large"; break;
    case 414:
    case 431: code = "request_header_too_large"; break;
    case 503: code = "too_many_connections"; break;
    default: code = status >= 500 ? "server_error" : "malformed_http";
  }
  return ErrorResponse(ApiError{status, message,
                                status >= 500 ? "server_error" : "invalid_request_error", "",
                                code});
}

Status CheckPositive(double v, const char* what) {
  if (v > 0 && v < 1e7) return Status::Ok();
  return Status::InvalidArgument(std::string(what) + " must be > 0 seconds (and < 1e7), got " +
                                 std::to_string(v));
}

Status CheckOptions(const ServerOptions& o) {
  if (o.port < 0 || o.port > 65535) {
    return Status::InvalidArgument("port must be in [0, 65535], got " + std::to_string(o.port));
  }
  if (o.max_body_bytes < 1) {
    return Status::InvalidArgument("max body bytes must be >= 1, got " +
                                   std::to_string(o.max_body_bytes));
  }
  if (o.max_concurrent_requests < 1 || o.max_concurrent_requests > kMaxConcurrentLimit) {
    return Status::InvalidArgument("max concurrent requests must be in [1, " +
                                   std::to_string(kMaxConcurrentLimit) + "], got " +
                                   std::to_string(o.max_concurrent_requests));
  }
  if (o.max_connections < 1 || o.max_connections > kMaxConnectionsLimit) {
    return Status::InvalidArgument("max connections must be in [1, " +
                                   std::to_string(kMaxConnectionsLimit) + "], got " +
                                   std::to_string(o.max_connections));
  }
  if (o.max_json_depth < 1 || o.max_json_depth > kMaxJsonDepthLimit) {
    return Status::InvalidArgument("max JSON depth must be in [1, " +
                                   std::to_string(kMaxJsonDepthLimit) + "], got " +
                                   std::to_string(o.max_json_depth));
  }
  if (o.max_headers < 8 || o.max_headers > 10000) {
    return Status::InvalidArgument("max headers must be in [8, 10000], got " +
                                   std::to_string(o.max_headers));
  }
  if (o.max_header_bytes < 1024 || o.max_header_bytes > (16 << 20)) {
    return Status::InvalidArgument("max header bytes must be in [1 KiB, 16 MiB], got " +
                                   std::to_string(o.max_header_bytes));
  }
  DSV4_RETURN_IF_ERROR(CheckPositive(o.request_timeout_s, "request timeout"));
  DSV4_RETURN_IF_ERROR(CheckPositive(o.header_timeout_s, "header timeout"));
  DSV4_RETURN_IF_ERROR(CheckPositive(o.body_timeout_s, "body timeout"));
  DSV4_RETURN_IF_ERROR(CheckPositive(o.idle_timeout_s, "idle timeout"));
  return Status::Ok();
}

std::chrono::milliseconds Millis(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

}  // namespace

class Server::Impl {
 public:
  explicit Impl(const ServerOptions& o)
      : options_(o),
        policy_(PolicyOptions{.bind_host = o.host,
                              .allowed_hosts = o.allowed_hosts,
                              .cors_origins = o.cors_origins,
                              .api_key = o.api_key}) {}

  Status Bind();
  Status LoadModel();
  void Stop();
  Engine* engine() { return ready_.load() ? state_.engine.get() : nullptr; }

  ServerOptions options_;
  int port_ = -1;

 private:
  // On the I/O thread, before the body is read: the policy, the route, loading; answers the
  // GET routes outright. nullopt: a generation request to read and hand to a worker.
  std::optional<http::Response> Admit(const http::RequestHead& head) const;
  void Handle(const http::Request& req, http::ResponseWriter& w);
  http::Response Models(const http::RequestHead& head) const;
  http::Response Metrics() const;

  RequestPolicy policy_;
  std::unique_ptr<http::HttpServer> http_;
  ServerMetrics metrics_;
  std::atomic<bool> ready_{false};  // state_ is complete (release/acquire)
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> in_flight_{0};
  ServingState state_;
  int64_t loaded_at_ = 0;  // Unix seconds, for /v1/models "created"
  std::mutex stop_mu_;
  bool stopped_ = false;
};

http::Response Server::Impl::Models(const http::RequestHead& head) const {
  const Json model = {{"id", state_.model_id},
                      {"object", "model"},
                      {"created", loaded_at_},
                      {"owned_by", "dsv4.cpp"},
                      {"max_model_len", state_.engine->config().max_position_embeddings}};
  if (FindRoute(head.path) == Route::kModel) {  // GET /v1/models/{id}
    const std::string id = head.path.substr(11);
    if (id != state_.model_id) {
      return ErrorResponse(ApiError{404, "the model '" + id.substr(0, 256) + "' does not exist",
                                    "invalid_request_error", "model", "model_not_found"});
    }
    return http::Response{200, "application/json", JsonText(model), {}};
  }
  return http::Response{200, "application/json",
                        JsonText(Json{{"object", "list"}, {"data", Json::array({model})}}), {}};
}

http::Response Server::Impl::Metrics() const {
  const bool ready = ready_.load();
  EngineStats stats;
  if (ready) stats = state_.engine->Stats();
  const http::HttpStats h = http_ ? http_->stats() : http::HttpStats{};
  return http::Response{200, "text/plain; version=0.0.4; charset=utf-8",
                        metrics_.Render(ready ? &stats : nullptr, ready ? state_.model_id : "",
                                        ready, in_flight_.load(), h),
                        {}};
}

std::optional<http::Response> Server::Impl::Admit(const http::RequestHead& head) const {
  if (std::optional<ApiError> e = policy_.CheckSource(head)) return ErrorResponse(*e);
  http::HeaderList cors = policy_.CorsHeaders(head);
  auto answer = [&](http::Response r) {
    r.headers.insert(r.headers.end(), cors.begin(), cors.end());
    return r;
  };
  if (head.method == "OPTIONS") return policy_.Preflight(head);
  const Route route = FindRoute(head.path);
  if (route == Route::kNone) {
    return answer(ErrorResponse(ApiError{404, "no route for " + head.method + " " +
                                                  head.path.substr(0, 256),
                                         "invalid_request_error", "", "not_found"}));
  }
  const std::string_view want = IsPost(route) ? "POST" : "GET";
  if (head.method != want) {
    return answer(ErrorResponse(
        ApiError{405, head.path + " takes " + std::string(want) + ", not " + head.method,
                 "invalid_request_error", "", "method_not_allowed"},
        {{"Allow", std::string(want)}}));
  }
  if (route == Route::kHealth) {
    if (stopping_.load()) return answer(ErrorResponse(ShuttingDown()));
    if (!ready_.load()) return answer(ErrorResponse(Loading()));
    if (std::string why = state_.engine->unavailable(); !why.empty()) {
      return answer(ErrorResponse(Unavailable(why)));
    }
    return answer(http::Response{
        200, "application/json",
        JsonText(Json{{"status", "ok"}, {"model", state_.model_id}}), {}});
  }
  if (route == Route::kMetrics) return answer(Metrics());  // open, like /health
  // Everything else is the API: the key (when set) is required, /tokenize and friends too.
  if (std::optional<ApiError> e = policy_.CheckAuth(head)) return answer(ErrorResponse(*e));
  if (std::optional<ApiError> e = policy_.CheckContentType(head)) {
    return answer(ErrorResponse(*e));
  }
  if (stopping_.load()) return answer(ErrorResponse(ShuttingDown()));
  if (!ready_.load()) return answer(ErrorResponse(Loading()));
  if (!IsPost(route)) return answer(Models(head));
  return std::nullopt;
}

void Server::Impl::Handle(const http::Request& req, http::ResponseWriter& w) {
  const http::HeaderList cors = policy_.CorsHeaders(req.head);
  try {
    if (stopping_.load()) return (void)w.Send(ErrorResponse(ShuttingDown(), cors));
    switch (FindRoute(req.head.path)) {
      case Route::kChat: return HandleChatCompletions(state_, req, w, cors);
      case Route::kTokenize: return HandleTokenize(state_, req, w, cors);
      case Route::kDetokenize: return HandleDetokenize(state_, req, w, cors);
      case Route::kApplyTemplate: return HandleApplyTemplate(state_, req, w, cors);
      default: return HandleCompletions(state_, req, w, cors);
    }
  } catch (const std::exception& e) {
    // Third-party exceptions (nlohmann, std) stop here.
    if (!w.started()) {
      w.Send(ErrorResponse(
          ApiError{500, std::string("internal error: ") + e.what(), "server_error", "", ""},
          cors));
    }
  }
}

Status Server::Impl::Bind() {
  DSV4_RETURN_IF_ERROR(CheckOptions(options_));
  // A client that disconnects makes a write fail with EPIPE; sends use MSG_NOSIGNAL, and
  // this keeps any other write from killing the process.
  std::signal(SIGPIPE, SIG_IGN);
  http::HttpServerOptions h;
  h.host = options_.host;
  h.port = options_.port;
  h.max_connections = options_.max_connections;
  h.worker_threads = static_cast<int>(options_.max_concurrent_requests + kExtraHandlerThreads);
  h.max_body_bytes = options_.max_body_bytes;
  h.head_limits.max_headers = options_.max_headers;
  h.head_limits.max_head_bytes = static_cast<size_t>(options_.max_header_bytes);
  h.head_limits.max_request_line =
      std::min<size_t>(h.head_limits.max_request_line, h.head_limits.max_head_bytes);
  h.idle_timeout = Millis(options_.idle_timeout_s);
  h.header_timeout = Millis(options_.header_timeout_s);
  h.body_timeout = Millis(options_.body_timeout_s);
  h.error_response = HttpLayerError;
  DSV4_ASSIGN_OR_RETURN(
      http_, http::HttpServer::Start(
                 h, [this](const http::RequestHead& head) { return Admit(head); },
                 [this](const http::Request& req, http::ResponseWriter& w) { Handle(req, w); },
                 [this](const http::RequestHead& head, int status) {
                   metrics_.CountRequest(head.path, status);
                 }));
  port_ = http_->port();
  return Status::Ok();
}

Status Server::Impl::LoadModel() {
  if (ready_.load()) return Status::FailedPrecondition("the model is already loaded");
  DSV4_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine,
                        Engine::Create(options_.model, options_.engine));
  Result<const tokenizer::Tokenizer*> tok = engine->tokenizer();
  if (!tok.ok() && tok.status().code() == StatusCode::kFailedPrecondition) {  // none
    return Status::FailedPrecondition(
        tok.status().message() +
        ": dsv4 serve needs the model's tokenizer (the token-id commands, dsv4 run "
        "--prompt-tokens and dsv4 logits, work without it)");
  }
  if (!tok.ok()) return tok.status();  // tokenizer.json does not parse
  state_.engine = std::move(engine);
  state_.tokenizer = *tok;
  state_.options = &options_;
  state_.model_id = state_.engine->model_name();
  state_.chat_format = state_.engine->config().arch == checkpoint::Arch::kV32
                           ? tokenizer::ChatFormat::kV32
                           : tokenizer::ChatFormat::kV4;
  state_.generation = GenerationContext{.engine = state_.engine.get(),
                                        .tokenizer = state_.tokenizer,
                                        .metrics = &metrics_,
                                        .in_flight = &in_flight_,
                                        .max_in_flight = options_.max_concurrent_requests,
                                        .stopping = &stopping_};
  loaded_at_ = static_cast<int64_t>(std::time(nullptr));
  ready_.store(true);
  return Status::Ok();
}

void Server::Impl::Stop() {
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  // Generations see stopping_ within one poll interval and end (503 / an error event); the
  // HTTP layer then drops every connection no handler holds and joins its handlers, so no
  // handler is left that could touch the engine below.
  stopping_.store(true);
  // Let the handlers write their final events first (bounded: a client that stops reading
  // must not delay the shutdown).
  for (int i = 0; i < 200 && in_flight_.load() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (http_) http_->Stop();
  ready_.store(false);
  state_.engine.reset();
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() { Stop(); }

Result<std::unique_ptr<Server>> Server::Start(const ServerOptions& options) {
  auto impl = std::make_unique<Impl>(options);
  DSV4_RETURN_IF_ERROR(impl->Bind());
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Status Server::LoadModel() { return impl_->LoadModel(); }
void Server::Stop() { impl_->Stop(); }
int Server::port() const { return impl_->port_; }
std::string Server::url() const {
  const std::string& h = impl_->options_.host;
  const bool v6 = h.find(':') != std::string::npos;
  return "http://" + (v6 ? "[" + h + "]" : h) + ":" + std::to_string(impl_->port_);
}
Engine* Server::engine() { return impl_->engine(); }

}  // namespace dsv4::server
