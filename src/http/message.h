// HTTP/1.1 messages as the server sees them: a parsed request head (method, target, headers),
// a whole request (head + body), and a response. Plain data; thread-compatible.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dsv4::http {

// Header names are stored lower-cased (HTTP names are case-insensitive); values as sent,
// without leading or trailing whitespace.
using HeaderList = std::vector<std::pair<std::string, std::string>>;

// How the body of a request is framed (RFC 9112 section 6).
enum class BodyFraming {
  kNone,           // no Content-Length, no Transfer-Encoding: no body
  kContentLength,  // exactly content_length bytes
  kChunked,        // Transfer-Encoding: chunked
};

struct RequestHead {
  std::string method;  // "GET", "POST", ... (case-sensitive, as RFC 9110 says)
  std::string target;  // as sent: "/v1/models?x=1"
  std::string path;    // the target before '?'
  std::string query;   // after '?', or empty
  int version_minor = 1;  // HTTP/1.<minor>: 0 or 1
  HeaderList headers;
  BodyFraming framing = BodyFraming::kNone;
  int64_t content_length = 0;  // kContentLength only
  bool keep_alive = true;      // the connection may serve another request after this one
  bool expect_continue = false;  // "Expect: 100-continue"

  // The value of the first header called `name` (lower case), or nullptr.
  const std::string* Find(std::string_view name) const;
  // The value of header `name`, or "" when absent.
  std::string Value(std::string_view name) const;
};

struct Request {
  RequestHead head;
  std::string body;    // de-chunked
  std::string remote;  // peer address "ip:port", for logs
};

struct Response {
  int status = 200;
  std::string content_type;  // empty: no Content-Type header
  std::string body;
  HeaderList headers;  // extra headers (no Content-Length/Connection: the writer sets those)
};

// A response head: status line, Content-Type (when non-empty), the fields of each list in
// order, `framing` (a whole "Content-Length: N\r\n" or "Transfer-Encoding: chunked\r\n" line),
// Connection (keep-alive or close) and the empty line.
std::string SerializeHead(int status, std::string_view content_type,
                          std::initializer_list<const HeaderList*> header_lists,
                          std::string_view framing, bool keep_alive);

// "OK", "Not Found", ... for the statuses the server uses; "Unknown" otherwise.
std::string_view ReasonPhrase(int status);

// ASCII lower case.
std::string ToLower(std::string_view s);

}  // namespace dsv4::http
