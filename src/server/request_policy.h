// What a local inference server accepts before it reads a request body: the Host it is
// addressed by (DNS rebinding), the browser Origin it comes from (cross-site requests), the
// API key, and the Content-Type of a POST (a JSON API; a form or text/plain POST is what a
// web page can send without a CORS preflight). README "Security" documents the defaults.
//
// Immutable after construction; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/message.h"
#include "server/api_error.h"

namespace dsv4::server {

struct PolicyOptions {
  std::string bind_host;  // the address the server listens on
  // Host header values (host part, no port) accepted; "*" accepts any. Empty: the default,
  // DefaultAllowedHosts(bind_host).
  std::vector<std::string> allowed_hosts;
  // Browser origins ("https://app.example:8443") allowed to call the server; "*" allows any.
  // Empty: a request carrying an Origin header is refused.
  std::vector<std::string> cors_origins;
  std::string api_key;  // non-empty: /v1/* and the text endpoints need "Authorization: Bearer <key>"
};

// A loopback bind (127.0.0.0/8, ::1, localhost) accepts Host localhost, 127.0.0.1, [::1]
// and the bound address; a server bound to another address was put on a network on purpose
// and accepts any Host ("*"): the API key protects it there.
std::vector<std::string> DefaultAllowedHosts(std::string_view bind_host);

// True when `host` names a loopback address or "localhost".
bool IsLoopbackHost(std::string_view host);

class RequestPolicy {
 public:
  explicit RequestPolicy(PolicyOptions options);

  // The Host and Origin checks (403), for every route. nullopt: allowed.
  std::optional<ApiError> CheckSource(const http::RequestHead& head) const;
  // The API key (401), for /v1/* and the text endpoints (/tokenize, ...).
  std::optional<ApiError> CheckAuth(const http::RequestHead& head) const;
  // A POST's Content-Type must be application/json (415).
  std::optional<ApiError> CheckContentType(const http::RequestHead& head) const;

  // The CORS response headers for an allowed Origin (none without one).
  http::HeaderList CorsHeaders(const http::RequestHead& head) const;
  // The answer to an OPTIONS request (a CORS preflight), after CheckSource passed.
  http::Response Preflight(const http::RequestHead& head) const;

 private:
  bool HostAllowed(std::string_view host) const;

  PolicyOptions o_;
};

}  // namespace dsv4::server
