// An HTTP/1.1 server that a slow or hostile client cannot starve: one I/O thread reads every
// request (head, then body) with per-request deadlines and size limits, and only a complete
// request reaches a handler thread. So trickling clients hold a connection slot (capped) but
// never a handler, /health answers while every handler is busy, and Stop() drops idle and
// half-read connections at once.
//
//   accept (over max_connections: 503, closed) -> head within header_timeout (408), limits
//   (request_parser.h) -> admit(head) on the I/O thread: refuse (auth, policy, 404, 413) or
//   answer a bodyless request outright; the body is never read for either -> "100 Continue"
//   if asked -> body within body_timeout, at most max_body_bytes (413 while reading, chunked
//   or not) -> handle(request, writer) on a worker -> keep-alive: back to the I/O thread.
//
// Refused connections are half-closed and drained for a moment so the client reads the error
// instead of a reset. Thread safety: Stop(), port() and stats() from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/status.h"
#include "http/message.h"
#include "http/request_parser.h"
#include "http/response_writer.h"

namespace dsv4::http {

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;                   // 0: any free port
  int max_connections = 128;      // open at once; more are answered 503 and closed
  int worker_threads = 8;         // handler threads
  int64_t max_body_bytes = 8 << 20;
  HeadLimits head_limits;
  // A connection may sit without a request this long (new or kept alive).
  std::chrono::milliseconds idle_timeout{5000};
  // From a request's first byte to the end of its head; then from there to the end of its
  // body. Whole-request deadlines, not per-read: a byte every second does not extend them.
  std::chrono::milliseconds header_timeout{10000};
  std::chrono::milliseconds body_timeout{60000};
  // A response write that makes no progress for this long fails (client stopped reading).
  std::chrono::milliseconds write_timeout{30000};
  // The body of the errors this layer answers itself (400, 408, 411, 413, 414, 431, 503 over
  // the connection cap, 500 from a handler that threw); default: text/plain.
  std::function<Response(int status, const std::string& message)> error_response;
};

struct HttpStats {
  int64_t open_connections = 0;
  int64_t connections_total = 0;       // accepted
  int64_t connections_refused = 0;     // over max_connections
  int64_t read_timeouts = 0;           // 408: head or body not in time
  int64_t malformed_requests = 0;      // refused by the parser (400, 413, 414, 431, ...)
};

// Runs on the I/O thread once a head is parsed, before any of its body is read. A response
// answers the request there (refusals, and cheap routes such as /health); nullopt sends it on
// to a handler. Must not block.
using AdmitFn = std::function<std::optional<Response>(const RequestHead& head)>;
// Runs on a worker with the whole request; must respond through the writer (a handler that
// does not gets a 500). Exceptions are caught (500 when nothing was sent yet).
using HandleFn = std::function<void(const Request& request, ResponseWriter& writer)>;
// After each response (status 0: the connection failed before one); any thread.
using LogFn = std::function<void(const RequestHead& head, int status)>;

class HttpServer {
 public:
  // Binds host:port and starts the I/O and worker threads. IoError when the address cannot be
  // bound; InvalidArgument for bad options.
  static Result<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options,
                                                   AdmitFn admit, HandleFn handle, LogFn log);
  ~HttpServer();  // Stop()

  // Stops accepting, closes every connection not in a handler at once, makes handlers'
  // writes fail, and joins all threads once the handlers return. Idempotent.
  void Stop();
  // True from Stop() on: handlers poll it to end long work.
  const std::atomic<bool>& stopping() const;

  int port() const;
  HttpStats stats() const;

  class Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dsv4::http
