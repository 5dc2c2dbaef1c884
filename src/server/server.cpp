#include "server/server.h"

#include <sys/socket.h>

#include <csignal>
#include <ctime>
#include <mutex>
#include <thread>

#include <httplib.h>

#include "checkpoint/config.h"
#include "server/endpoints.h"
#include "server/openai_response.h"

namespace dsv4::server {
namespace {

using Json = nlohmann::ordered_json;

// Handler threads beyond the generation slots: /health, /metrics and idle keep-alive
// connections must not wait behind long generations.
constexpr int64_t kExtraHandlerThreads = 8;
constexpr int64_t kMaxConcurrentLimit = 4096;

// Compares without an early exit, so the time taken does not reveal how much of a guessed
// key was right.
bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  }
  return diff == 0;
}

ApiError Loading() {
  return ApiError{503, "the model is loading; retry shortly", "service_unavailable", "",
                  "model_loading"};
}

ApiError ShuttingDown() {
  return ApiError{503, "the server is shutting down", "service_unavailable", "",
                  "shutting_down"};
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
  if (!(o.request_timeout_s > 0)) {
    return Status::InvalidArgument("request timeout must be > 0 seconds, got " +
                                   std::to_string(o.request_timeout_s));
  }
  return Status::Ok();
}

// httplib::Server with two socket settings Debian's cpp-httplib 0.11 gets wrong for us.
class HttpServer : public httplib::Server {
 public:
  HttpServer() {
    // The default also sets SO_REUSEPORT, which lets a second server bind the same port
    // and silently take half the connections; SO_REUSEADDR alone still allows a quick
    // restart after a stop.
    set_socket_options([](socket_t sock) {
      int yes = 1;
      setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    });
  }
  // The library listens with a backlog of 5 (CPPHTTPLIB_LISTEN_BACKLOG is compiled into the
  // shared library): a burst of clients while the engine keeps the cores busy overflows it,
  // and dropped handshakes stall clients for seconds. listen() again only resizes the queue.
  void RaiseBacklog(int backlog) { ::listen(svr_sock_, backlog); }
};

}  // namespace

class Server::Impl {
 public:
  explicit Impl(const ServerOptions& o) : options_(o) {}

  Status Bind();
  Status LoadModel();
  void Stop();
  Engine* engine() { return ready_.load() ? state_.engine.get() : nullptr; }

  ServerOptions options_;
  int port_ = -1;

 private:
  void Routes();
  // The checks every /v1 request passes first: the API key, then loading. False: `res`
  // holds the error.
  bool Admit(const httplib::Request& req, httplib::Response& res) const;
  // Wraps a handler: third-party exceptions (nlohmann, httplib, std) stop here as a 500.
  httplib::Server::Handler Guard(std::function<void(const httplib::Request&,
                                                    httplib::Response&)> f) const;
  void Models(const httplib::Request& req, httplib::Response& res) const;

  HttpServer http_;
  std::thread listener_;
  ServerMetrics metrics_;
  std::atomic<bool> ready_{false};  // state_ is complete (release/acquire)
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> in_flight_{0};
  ServingState state_;
  int64_t loaded_at_ = 0;  // Unix seconds, for /v1/models "created"
  std::mutex stop_mu_;
  bool stopped_ = false;
};

httplib::Server::Handler Server::Impl::Guard(
    std::function<void(const httplib::Request&, httplib::Response&)> f) const {
  return [f = std::move(f)](const httplib::Request& req, httplib::Response& res) {
    try {
      f(req, res);
    } catch (const std::exception& e) {
      SendError(res, ApiError{500, std::string("internal error: ") + e.what(), "server_error",
                              "", ""});
    }
  };
}

bool Server::Impl::Admit(const httplib::Request& req, httplib::Response& res) const {
  if (!options_.api_key.empty()) {
    const std::string auth = req.get_header_value("Authorization");
    if (!ConstantTimeEquals(auth, "Bearer " + options_.api_key)) {
      res.set_header("WWW-Authenticate", "Bearer");
      SendError(res, ApiError{401,
                              auth.empty() ? "missing API key: send 'Authorization: Bearer KEY'"
                                           : "incorrect API key",
                              "invalid_request_error", "", "invalid_api_key"});
      return false;
    }
  }
  if (stopping_.load()) {
    SendError(res, ShuttingDown());
    return false;
  }
  if (!ready_.load()) {
    SendError(res, Loading());
    return false;
  }
  return true;
}

void Server::Impl::Models(const httplib::Request& req, httplib::Response& res) const {
  const Json model = {{"id", state_.model_id},
                      {"object", "model"},
                      {"created", loaded_at_},
                      {"owned_by", "dsv4.cpp"},
                      {"max_model_len", state_.engine->config().max_position_embeddings}};
  if (req.matches.size() > 1) {  // GET /v1/models/{id}
    if (req.matches[1] != state_.model_id) {
      return SendError(res, ApiError{404, "the model '" + req.matches[1].str() +
                                              "' does not exist",
                                     "invalid_request_error", "model", "model_not_found"});
    }
    res.set_content(JsonText(model), "application/json");
    return;
  }
  res.set_content(JsonText(Json{{"object", "list"}, {"data", Json::array({model})}}),
                  "application/json");
}

void Server::Impl::Routes() {
  http_.Get("/health", Guard([this](const httplib::Request&, httplib::Response& res) {
    if (stopping_.load()) return SendError(res, ShuttingDown());
    if (!ready_.load()) return SendError(res, Loading());
    res.set_content(JsonText(Json{{"status", "ok"}, {"model", state_.model_id}}),
                    "application/json");
  }));
  http_.Get("/metrics", Guard([this](const httplib::Request&, httplib::Response& res) {
    const bool ready = ready_.load();
    EngineStats stats;
    if (ready) stats = state_.engine->Stats();
    res.set_content(metrics_.Render(ready ? &stats : nullptr, ready ? state_.model_id : "",
                                    ready, in_flight_.load()),
                    "text/plain; version=0.0.4; charset=utf-8");
  }));
  auto models = [this](const httplib::Request& req, httplib::Response& res) {
    if (Admit(req, res)) Models(req, res);
  };
  http_.Get("/v1/models", Guard(models));
  http_.Get(R"(/v1/models/(.+))", Guard(models));
  http_.Post("/v1/completions", Guard([this](const httplib::Request& req,
                                             httplib::Response& res) {
    if (Admit(req, res)) HandleCompletions(state_, req, res);
  }));
  http_.Post("/v1/chat/completions", Guard([this](const httplib::Request& req,
                                                  httplib::Response& res) {
    if (Admit(req, res)) HandleChatCompletions(state_, req, res);
  }));
  // httplib's own refusals (no route, body over the limit, malformed HTTP) get a JSON body
  // too; responses that already have one are ours.
  http_.set_error_handler(httplib::Server::HandlerWithResponse(
      [this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    ApiError e{res.status, "HTTP status " + std::to_string(res.status), "invalid_request_error",
               "", ""};
    if (res.status == 404) {
      e.message = "no route for " + req.method + " " + req.path;
      e.code = "not_found";
    } else if (res.status == 413) {
      e.message = "the request body exceeds the limit of " +
                  std::to_string(options_.max_body_bytes) + " bytes (--max-body-bytes)";
      e.code = "request_too_large";
    } else if (res.status == 400) {
      e.message = "malformed HTTP request";
    }
    res.set_content(ErrorBody(e), "application/json");
    return httplib::Server::HandlerResponse::Handled;
  }));
  http_.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
        SendError(res, ApiError{500, "internal error", "server_error", "", ""});
      });
  // Counted after the response is written; a stream cut off early is not logged by httplib
  // (see dsv4_streams_aborted_total).
  http_.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    metrics_.CountRequest(req.path, res.status);
  });
}

Status Server::Impl::Bind() {
  DSV4_RETURN_IF_ERROR(CheckOptions(options_));
  // A client that disconnects makes the next write fail with EPIPE; without this the
  // signal would kill the process.
  std::signal(SIGPIPE, SIG_IGN);
  Routes();
  http_.set_payload_max_length(static_cast<size_t>(options_.max_body_bytes));
  const size_t threads = static_cast<size_t>(options_.max_concurrent_requests +
                                             kExtraHandlerThreads);
  http_.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  if (options_.port == 0) {
    port_ = http_.bind_to_any_port(options_.host);
  } else {
    port_ = http_.bind_to_port(options_.host, options_.port) ? options_.port : -1;
  }
  if (port_ <= 0) {
    return Status::IoError("cannot listen on " + options_.host + ":" +
                           std::to_string(options_.port) +
                           " (port in use, or not an address of this machine)");
  }
  http_.RaiseBacklog(1024);
  listener_ = std::thread([this] { http_.listen_after_bind(); });
  // Stop() before the accept loop runs would be lost (httplib ignores it), so wait for it.
  for (int i = 0; i < 5000 && !http_.is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (!http_.is_running()) {
    http_.stop();
    listener_.join();
    return Status::Internal("the HTTP listener did not start");
  }
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
  stopping_.store(true);
  http_.stop();
  // httplib joins its handler threads before listen returns, so no handler is left that
  // could touch the engine below.
  if (listener_.joinable()) listener_.join();
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
  return "http://" + impl_->options_.host + ":" + std::to_string(impl_->port_);
}
Engine* Server::engine() { return impl_->engine(); }

}  // namespace dsv4::server
