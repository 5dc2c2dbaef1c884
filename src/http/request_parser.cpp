#include "http/request_parser.h"

#include <cstring>
#include <vector>

namespace dsv4::http {
namespace {

constexpr std::string_view kCrlf = "\r\n";
constexpr size_t kMaxChunkLine = 1024;     // chunk size + extensions, one line
constexpr size_t kMaxChunkOverhead = 64 << 10;  // all chunk-size lines and trailers together
constexpr int kMaxContentLengthDigits = 18;  // fits int64

// RFC 9110 5.6.2 token characters.
bool IsTchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!IsTchar(c)) return false;
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

HeadParse Error(int status, std::string message) {
  HeadParse p;
  p.kind = HeadParse::Kind::kError;
  p.error = {status, std::move(message)};
  return p;
}

// Splits a comma-separated header value into trimmed, lower-cased, non-empty items.
std::vector<std::string> ListItems(std::string_view v) {
  std::vector<std::string> out;
  while (!v.empty()) {
    const size_t comma = v.find(',');
    const std::string_view item = Trim(v.substr(0, comma));
    if (!item.empty()) out.push_back(ToLower(item));
    if (comma == std::string_view::npos) break;
    v.remove_prefix(comma + 1);
  }
  return out;
}

// The request line "METHOD SP target SP HTTP/1.x".
bool ParseRequestLine(std::string_view line, RequestHead* h, HeadError* e) {
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    *e = {400, "malformed request line (want 'METHOD /path HTTP/1.1')"};
    return false;
  }
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (!IsToken(method)) {
    *e = {400, "malformed request method"};
    return false;
  }
  if (version.size() != 8 || version.substr(0, 7) != "HTTP/1.") {
    *e = {version.substr(0, 5) == "HTTP/" ? 505 : 400,
          "unsupported protocol version (want HTTP/1.0 or HTTP/1.1)"};
    return false;
  }
  if (version[7] != '0' && version[7] != '1') {
    *e = {505, "unsupported protocol version (want HTTP/1.0 or HTTP/1.1)"};
    return false;
  }
  // Origin form only ("/path?query"), or "*" for OPTIONS; visible ASCII.
  if (target.empty() || (target[0] != '/' && !(target == "*" && method == "OPTIONS"))) {
    *e = {400, "the request target must be a path starting with '/'"};
    return false;
  }
  for (char c : target) {
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      *e = {400, "the request target holds a control or non-ASCII byte"};
      return false;
    }
  }
  h->method = method;
  h->target = target;
  const size_t q = target.find('?');
  h->path = target.substr(0, q);
  h->query = q == std::string_view::npos ? "" : target.substr(q + 1);
  h->version_minor = version[7] - '0';
  return true;
}

bool ParseField(std::string_view line, RequestHead* h, HeadError* e) {
  if (line[0] == ' ' || line[0] == '\t') {
    *e = {400, "obsolete line folding in a header field"};
    return false;
  }
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos || !IsToken(line.substr(0, colon))) {
    *e = {400, "malformed header field (want 'Name: value', no space before the colon)"};
    return false;
  }
  const std::string_view value = Trim(line.substr(colon + 1));
  for (char c : value) {
    if (c == '\r' || c == '\n' || c == '\0') {
      *e = {400, "a header value holds CR, LF or NUL"};
      return false;
    }
  }
  h->headers.emplace_back(ToLower(line.substr(0, colon)), std::string(value));
  return true;
}

// Host, Connection, Expect and the body framing, from the parsed fields.
bool ApplyFields(RequestHead* h, HeadError* e) {
  int hosts = 0;
  bool has_length = false;
  bool has_te = false;
  std::string te;
  std::vector<std::string> connection;
  for (const auto& [name, value] : h->headers) {
    if (name == "host") {
      ++hosts;
    } else if (name == "content-length") {
      if (value.empty() || value.size() > kMaxContentLengthDigits ||
          value.find_first_not_of("0123456789") != std::string::npos) {
        *e = {400, "Content-Length must be 1 to 18 decimal digits, got '" +
                       value.substr(0, 32) + "'"};
        return false;
      }
      const int64_t n = std::stoll(value);
      if (has_length && n != h->content_length) {
        *e = {400, "two different Content-Length values (" + std::to_string(h->content_length) +
                       " and " + value + ")"};
        return false;
      }
      has_length = true;
      h->content_length = n;
    } else if (name == "transfer-encoding") {
      if (has_te) te += ",";
      te += value;
      has_te = true;
    } else if (name == "connection") {
      for (std::string& item : ListItems(value)) connection.push_back(std::move(item));
    } else if (name == "expect") {
      if (ToLower(value) != "100-continue") {
        *e = {417, "unsupported Expect '" + value.substr(0, 64) + "' (only 100-continue)"};
        return false;
      }
      h->expect_continue = true;
    }
  }
  if (h->version_minor == 1 && hosts != 1) {
    *e = {400, hosts == 0 ? "missing Host header (HTTP/1.1 requires one)"
                          : "more than one Host header"};
    return false;
  }
  if (has_te) {
    if (has_length) {
      *e = {400, "both Transfer-Encoding and Content-Length: the body length is ambiguous"};
      return false;
    }
    if (h->version_minor == 0) {
      *e = {400, "Transfer-Encoding on an HTTP/1.0 request"};
      return false;
    }
    const std::vector<std::string> codings = ListItems(te);
    if (codings.size() != 1 || codings[0] != "chunked") {
      *e = {501, "unsupported Transfer-Encoding '" + te.substr(0, 64) + "' (only chunked)"};
      return false;
    }
    h->framing = BodyFraming::kChunked;
  } else if (has_length) {
    h->framing = BodyFraming::kContentLength;
  }
  h->keep_alive = h->version_minor == 1;
  for (const std::string& c : connection) {
    if (c == "close") h->keep_alive = false;
    if (c == "keep-alive" && h->version_minor == 0) h->keep_alive = true;
  }
  return true;
}

}  // namespace

HeadParse ParseRequestHead(std::string_view input, const HeadLimits& limits, size_t* scanned) {
  // Empty lines before the request line are skipped; they count toward the head limit.
  size_t start = 0;
  while (input.substr(start, 2) == kCrlf) start += 2;
  const size_t from = std::max(*scanned, start + 3) - 3;
  size_t end = input.find("\r\n\r\n", from);
  if (end == std::string_view::npos) {
    *scanned = input.size();
    const size_t line_end = input.find(kCrlf, start);
    if (line_end == std::string_view::npos && input.size() - start > limits.max_request_line) {
      return Error(414, "the request line is longer than " +
                            std::to_string(limits.max_request_line) + " bytes");
    }
    if (input.size() > limits.max_head_bytes) {
      return Error(431, "the request head is longer than " +
                            std::to_string(limits.max_head_bytes) + " bytes");
    }
    return HeadParse{};
  }
  if (end + 4 > limits.max_head_bytes) {
    return Error(431, "the request head is longer than " +
                          std::to_string(limits.max_head_bytes) + " bytes");
  }
  HeadParse p;
  const std::string_view head = input.substr(start, end + 2 - start);  // lines end in CRLF
  size_t pos = 0;
  int fields = 0;
  bool first = true;
  while (pos < head.size()) {
    const size_t eol = head.find(kCrlf, pos);
    const std::string_view line = head.substr(pos, eol - pos);
    pos = eol + 2;
    if (first) {
      if (line.size() > limits.max_request_line) {
        return Error(414, "the request line is longer than " +
                              std::to_string(limits.max_request_line) + " bytes");
      }
      if (line.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos ||
          !ParseRequestLine(line, &p.head, &p.error)) {
        if (p.error.message.empty()) p.error = {400, "malformed request line"};
        return Error(p.error.status, p.error.message);
      }
      first = false;
      continue;
    }
    if (++fields > limits.max_headers) {
      return Error(431, "more than " + std::to_string(limits.max_headers) + " header fields");
    }
    if (!ParseField(line, &p.head, &p.error)) return Error(p.error.status, p.error.message);
  }
  if (!ApplyFields(&p.head, &p.error)) return Error(p.error.status, p.error.message);
  p.kind = HeadParse::Kind::kDone;
  p.consumed = end + 4;
  return p;
}

ChunkedDecoder::State ChunkedDecoder::Fail(int status, std::string message) {
  error_ = {status, std::move(message)};
  step_ = Step::kDone;
  return State::kError;
}

ChunkedDecoder::State ChunkedDecoder::Feed(std::string_view in, size_t* consumed,
                                           std::string* body) {
  size_t pos = 0;
  auto done = [&](State s) {
    *consumed = pos;
    return s;
  };
  // Takes one CRLF-terminated line into line_ (possibly across calls); false: need more.
  auto take_line = [&](size_t limit, bool* too_long) {
    const size_t eol = in.find(kCrlf, pos);
    const size_t avail = (eol == std::string_view::npos ? in.size() : eol) - pos;
    *too_long = line_.size() + avail > limit;
    if (*too_long) return false;
    line_.append(in.substr(pos, avail));
    pos += avail;
    if (eol == std::string_view::npos) {
      // A CR at the very end may start the CRLF: leave it for the next call.
      if (!line_.empty() && line_.back() == '\r') {
        line_.pop_back();
        --pos;
      }
      return false;
    }
    pos += 2;
    line_limit_used_ += line_.size() + 2;
    return true;
  };
  while (pos < in.size() || step_ == Step::kDone) {
    switch (step_) {
      case Step::kSize: {
        bool too_long = false;
        if (!take_line(kMaxChunkLine, &too_long)) {
          if (too_long) return done(Fail(400, "a chunk-size line is too long"));
          return done(State::kNeedMore);
        }
        if (line_limit_used_ > kMaxChunkOverhead) {
          return done(Fail(400, "too many chunks (chunk framing over 64 KiB)"));
        }
        const std::string_view size_text = std::string_view(line_).substr(0, line_.find(';'));
        const std::string_view digits = Trim(size_text);
        if (digits.empty() || digits.size() > 15 ||
            digits.find_first_not_of("0123456789abcdefABCDEF") != std::string_view::npos) {
          return done(Fail(400, "malformed chunk size"));
        }
        const int64_t n = std::stoll(std::string(digits), nullptr, 16);
        line_.clear();
        if (n > max_body_ - static_cast<int64_t>(body->size())) {
          return done(Fail(413, "the chunked body exceeds the limit of " +
                                    std::to_string(max_body_) + " bytes"));
        }
        remaining_ = n;
        step_ = n == 0 ? Step::kTrailer : Step::kData;
        break;
      }
      case Step::kData: {
        const size_t take =
            static_cast<size_t>(std::min<int64_t>(remaining_, static_cast<int64_t>(in.size() - pos)));
        body->append(in.substr(pos, take));
        pos += take;
        remaining_ -= static_cast<int64_t>(take);
        if (remaining_ == 0) step_ = Step::kDataEnd;
        break;
      }
      case Step::kDataEnd: {
        if (in.size() - pos < 2) {
          if (in[pos] != '\r') return done(Fail(400, "chunk data not followed by CRLF"));
          return done(State::kNeedMore);
        }
        if (in.substr(pos, 2) != kCrlf) return done(Fail(400, "chunk data not followed by CRLF"));
        pos += 2;
        step_ = Step::kSize;
        break;
      }
      case Step::kTrailer: {
        bool too_long = false;
        if (!take_line(kMaxChunkLine * 8, &too_long)) {
          if (too_long) return done(Fail(431, "a trailer field is too long"));
          return done(State::kNeedMore);
        }
        if (line_limit_used_ > kMaxChunkOverhead) {
          return done(Fail(431, "trailer fields over 64 KiB"));
        }
        const bool last = line_.empty();
        line_.clear();
        if (last) step_ = Step::kDone;
        break;
      }
      case Step::kDone:
        return done(error_.message.empty() ? State::kDone : State::kError);
    }
  }
  return done(State::kNeedMore);
}

}  // namespace dsv4::http
