// Parses an HTTP/1.1 request head (request line and header fields, RFC 9112) and decides how
// its body is framed, refusing anything ambiguous: the checks that keep a request from being
// read two ways (request smuggling) or from growing without bound. Pure functions over bytes;
// the connection code (http_server.cpp) feeds them and the fuzz target drives them directly.
//
// Refused (status in HeadError):
//   400  malformed request line or field, bare CR/LF/NUL, obs-fold, missing or repeated Host
//        (HTTP/1.1), a Content-Length that is not 1-18 digits or two different ones,
//        Transfer-Encoding together with Content-Length or on HTTP/1.0
//   414  request line longer than the limit;   431 head longer than the limit, too many fields
//   417  an Expect other than 100-continue;    501 a transfer coding other than "chunked"
//   505  a version other than HTTP/1.0 or 1.1
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "http/message.h"

namespace dsv4::http {

struct HeadLimits {
  size_t max_request_line = 8 << 10;  // bytes, CRLF excluded
  size_t max_head_bytes = 32 << 10;   // request line + fields + the empty line
  int max_headers = 100;              // header fields
};

struct HeadError {
  int status = 400;
  std::string message;
};

struct HeadParse {
  enum class Kind { kIncomplete, kDone, kError };
  Kind kind = Kind::kIncomplete;
  size_t consumed = 0;  // kDone: bytes of the head, the empty line included
  RequestHead head;     // kDone
  HeadError error;      // kError
};

// Parses the head at the start of `input`. kIncomplete while the empty line that ends it has
// not arrived and `input` is still within the limits. `*scanned` (in/out, start at 0) is how
// far earlier calls on the same growing input looked for the end, so feeding a head one byte at
// a time stays linear. Empty lines before the request line are skipped (RFC 9112 2.2).
HeadParse ParseRequestHead(std::string_view input, const HeadLimits& limits, size_t* scanned);

// Decodes a chunked body (RFC 9112 section 7.1) as its bytes arrive; trailer fields are read
// and dropped. Refuses a body larger than `max_body` (413) while reading it, before it is held.
class ChunkedDecoder {
 public:
  explicit ChunkedDecoder(int64_t max_body) : max_body_(max_body) {}

  enum class State { kNeedMore, kDone, kError };
  // Consumes a prefix of `in` (its length in `*consumed`), appending the data to `*body`.
  // kDone: the body ended (bytes after it belong to the next request); kError: error().
  State Feed(std::string_view in, size_t* consumed, std::string* body);
  const HeadError& error() const { return error_; }

 private:
  enum class Step { kSize, kData, kDataEnd, kTrailer, kDone };
  State Fail(int status, std::string message);

  int64_t max_body_;
  Step step_ = Step::kSize;
  int64_t remaining_ = 0;  // kData: bytes left in this chunk
  size_t line_limit_used_ = 0;  // bytes of chunk-size lines and trailers so far
  std::string line_;       // a partial chunk-size or trailer line
  HeadError error_;
};

}  // namespace dsv4::http
