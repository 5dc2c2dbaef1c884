#include "server/request_policy.h"

#include <arpa/inet.h>

#include <algorithm>

namespace dsv4::server {
namespace {

// Compares without an early exit, so the time taken does not reveal how much of a guessed
// key was right.
bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  }
  return diff == 0;
}

// The host part of a Host header: "[::1]:8080" -> "[::1]", "Example.com:80" -> "example.com".
std::string HostPart(std::string_view host) {
  if (!host.empty() && host[0] == '[') {
    const size_t close = host.find(']');
    return http::ToLower(host.substr(0, close == std::string_view::npos ? host.size()
                                                                         : close + 1));
  }
  return http::ToLower(host.substr(0, host.find(':')));
}

// The media type of a Content-Type value, lower case, without parameters.
std::string MediaType(std::string_view v) {
  v = v.substr(0, v.find(';'));
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return http::ToLower(v);
}

ApiError Forbidden(std::string message, std::string code) {
  return ApiError{403, std::move(message), "invalid_request_error", "", std::move(code)};
}

}  // namespace

bool IsLoopbackHost(std::string_view host) {
  std::string h = http::ToLower(host);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (h == "localhost" || h == "::1") return true;
  in_addr a{};
  return inet_pton(AF_INET, h.c_str(), &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

std::vector<std::string> DefaultAllowedHosts(std::string_view bind_host) {
  if (!IsLoopbackHost(bind_host)) return {"*"};
  std::vector<std::string> hosts = {"localhost", "127.0.0.1", "[::1]"};
  std::string bound = http::ToLower(bind_host);
  if (bound.find(':') != std::string::npos && bound.front() != '[') bound = "[" + bound + "]";
  if (std::find(hosts.begin(), hosts.end(), bound) == hosts.end()) hosts.push_back(bound);
  return hosts;
}

RequestPolicy::RequestPolicy(PolicyOptions options) : o_(std::move(options)) {
  if (o_.allowed_hosts.empty()) o_.allowed_hosts = DefaultAllowedHosts(o_.bind_host);
  for (std::string& h : o_.allowed_hosts) h = HostPart(h);
}

bool RequestPolicy::HostAllowed(std::string_view host) const {
  const std::string h = HostPart(host);
  for (const std::string& a : o_.allowed_hosts) {
    if (a == "*" || a == h) return true;
  }
  return false;
}

std::optional<ApiError> RequestPolicy::CheckSource(const http::RequestHead& head) const {
  // HTTP/1.0 requests may omit Host; such a client is not a browser being rebound.
  if (const std::string* host = head.Find("host"); host != nullptr && !HostAllowed(*host)) {
    return Forbidden("the Host '" + host->substr(0, 128) +
                         "' is not one this server answers to (--allowed-hosts)",
                     "host_not_allowed");
  }
  if (const std::string* origin = head.Find("origin"); origin != nullptr) {
    const bool allowed = std::any_of(o_.cors_origins.begin(), o_.cors_origins.end(),
                                     [&](const std::string& o) {
                                       return o == "*" || http::ToLower(o) ==
                                                              http::ToLower(*origin);
                                     });
    if (!allowed) {
      return Forbidden("cross-origin requests from '" + origin->substr(0, 128) +
                           "' are not allowed (--cors-origin)",
                       "origin_not_allowed");
    }
  }
  return std::nullopt;
}

std::optional<ApiError> RequestPolicy::CheckAuth(const http::RequestHead& head) const {
  if (o_.api_key.empty()) return std::nullopt;
  const std::string auth = head.Value("authorization");
  if (ConstantTimeEquals(auth, "Bearer " + o_.api_key)) return std::nullopt;
  return ApiError{401,
                  auth.empty() ? "missing API key: send 'Authorization: Bearer KEY'"
                               : "incorrect API key",
                  "invalid_request_error", "", "invalid_api_key"};
}

std::optional<ApiError> RequestPolicy::CheckContentType(const http::RequestHead& head) const {
  if (head.method != "POST") return std::nullopt;
  const std::string type = MediaType(head.Value("content-type"));
  if (type == "application/json") return std::nullopt;
  return ApiError{415,
                  "Content-Type must be application/json, got '" +
                      (type.empty() ? std::string("none") : type.substr(0, 64)) + "'",
                  "invalid_request_error", "", "unsupported_media_type"};
}

http::HeaderList RequestPolicy::CorsHeaders(const http::RequestHead& head) const {
  const std::string* origin = head.Find("origin");
  if (origin == nullptr) return {};
  return {{"Access-Control-Allow-Origin", *origin}, {"Vary", "Origin"}};
}

http::Response RequestPolicy::Preflight(const http::RequestHead& head) const {
  http::Response r;
  r.status = 204;
  r.headers = CorsHeaders(head);
  r.headers.emplace_back("Allow", "GET, POST, OPTIONS");
  if (!r.headers.empty() && head.Find("origin") != nullptr) {
    r.headers.emplace_back("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    r.headers.emplace_back("Access-Control-Allow-Headers", "Authorization, Content-Type");
    r.headers.emplace_back("Access-Control-Max-Age", "600");
  }
  return r;
}

}  // namespace dsv4::server
