// The request-head parser and the chunked decoder: well-formed requests, every refusal with its
// status (the framing checks that keep a request from being read two ways), limits, and input
// that arrives one byte at a time.
#include "http/request_parser.h"

#include <string>

#include <gtest/gtest.h>

namespace dsv4::http {
namespace {

HeadParse Parse(const std::string& text, const HeadLimits& limits = {}) {
  size_t scanned = 0;
  return ParseRequestHead(text, limits, &scanned);
}

int StatusOf(const std::string& text, const HeadLimits& limits = {}) {
  const HeadParse p = Parse(text, limits);
  if (p.kind == HeadParse::Kind::kDone) return 0;
  if (p.kind == HeadParse::Kind::kIncomplete) return -1;
  return p.error.status;
}

TEST(RequestHead, ParsesRequestLineHeadersAndFraming) {
  const std::string text =
      "POST /v1/completions?x=1 HTTP/1.1\r\nHost: localhost:8080\r\n"
      "Content-Type:application/json \r\nContent-Length: 12\r\n\r\n{\"prompt\":1}";
  const HeadParse p = Parse(text);
  ASSERT_EQ(p.kind, HeadParse::Kind::kDone) << p.error.message;
  EXPECT_EQ(p.consumed, text.size() - 12);
  EXPECT_EQ(p.head.method, "POST");
  EXPECT_EQ(p.head.path, "/v1/completions");
  EXPECT_EQ(p.head.query, "x=1");
  EXPECT_EQ(p.head.Value("content-type"), "application/json");
  EXPECT_EQ(p.head.Value("host"), "localhost:8080");
  EXPECT_EQ(p.head.framing, BodyFraming::kContentLength);
  EXPECT_EQ(p.head.content_length, 12);
  EXPECT_TRUE(p.head.keep_alive);
}

TEST(RequestHead, ConnectionAndVersionDecideKeepAlive) {
  EXPECT_FALSE(Parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").head.keep_alive);
  EXPECT_FALSE(Parse("GET / HTTP/1.0\r\n\r\n").head.keep_alive);
  EXPECT_TRUE(Parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").head.keep_alive);
  const HeadParse chunked =
      Parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
  EXPECT_EQ(chunked.head.framing, BodyFraming::kChunked);
  EXPECT_TRUE(Parse("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                    "Content-Length: 1\r\n\r\n").head.expect_continue);
  // Empty lines before the request line are skipped.
  EXPECT_EQ(StatusOf("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
}

TEST(RequestHead, AmbiguousFramingIsRefused) {
  struct Case {
    const char* name;
    std::string text;
    int status;
  };
  const std::string h = "POST / HTTP/1.1\r\nHost: a\r\n";
  const Case cases[] = {
      {"two different Content-Length", h + "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", 400},
      {"plus sign", h + "Content-Length: +5\r\n\r\n", 400},
      {"negative", h + "Content-Length: -1\r\n\r\n", 400},
      {"list", h + "Content-Length: 5, 5\r\n\r\n", 400},
      {"hex", h + "Content-Length: 0x10\r\n\r\n", 400},
      {"empty", h + "Content-Length: \r\n\r\n", 400},
      {"19 digits", h + "Content-Length: 1000000000000000000\r\n\r\n", 400},
      {"TE and CL", h + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400},
      {"gzip coding", h + "Transfer-Encoding: gzip, chunked\r\n\r\n", 501},
      {"TE on 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"no Host", "GET / HTTP/1.1\r\n\r\n", 400},
      {"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
      {"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},
      {"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n  2\r\n\r\n", 400},
      {"bare LF in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: 1\n2\r\n\r\n", 400},
      {"NUL in a value", std::string("GET / HTTP/1.1\r\nHost: a\r\nX: 1\0", 31) + "2\r\n\r\n", 400},
      {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
      {"HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505},
      {"absolute form", "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"extra space", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"bad expect", h + "Expect: something\r\nContent-Length: 1\r\n\r\n", 417},
  };
  for (const Case& c : cases) EXPECT_EQ(StatusOf(c.text), c.status) << c.name;
  // Identical repeated Content-Length values are one length (RFC 9110 8.6).
  EXPECT_EQ(StatusOf(h + "Content-Length: 5\r\nContent-Length: 5\r\n\r\n"), 0);
}

TEST(RequestHead, LimitsOnLineHeadAndFieldCount) {
  HeadLimits limits;
  limits.max_request_line = 64;
  limits.max_head_bytes = 1024;
  limits.max_headers = 10;
  EXPECT_EQ(StatusOf("GET /" + std::string(100, 'a') + " HTTP/1.1\r\n\r\n", limits), 414);
  // Without its end yet: refused as soon as the request line passes the limit.
  EXPECT_EQ(StatusOf("GET /" + std::string(100, 'a'), limits), 414);
  std::string many = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 10; ++i) many += "X-" + std::to_string(i) + ": 1\r\n";
  EXPECT_EQ(StatusOf(many + "\r\n", limits), 431);
  // 200,000 header fields never finish arriving: refused once past the head limit.
  std::string flood = "GET / HTTP/1.1\r\nHost: a\r\n";
  while (flood.size() < 2000) flood += "X: 1\r\n";
  EXPECT_EQ(StatusOf(flood, limits), 431);
  EXPECT_EQ(StatusOf("GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(2000, 'v') + "\r\n\r\n",
                     limits),
            431);
}

TEST(RequestHead, ByteAtATimeFindsTheSameHeadInLinearTime) {
  const std::string text = "GET /health HTTP/1.1\r\nHost: a\r\nX: " + std::string(20000, 'v') +
                           "\r\n\r\nGET /next";
  size_t scanned = 0;
  HeadParse p;
  size_t n = 0;
  for (n = 1; n <= text.size(); ++n) {
    p = ParseRequestHead(std::string_view(text).substr(0, n), {}, &scanned);
    if (p.kind != HeadParse::Kind::kIncomplete) break;
    ASSERT_EQ(scanned, n);
  }
  ASSERT_EQ(p.kind, HeadParse::Kind::kDone) << p.error.message;
  EXPECT_EQ(p.consumed, n);
  EXPECT_EQ(p.head.path, "/health");
}

// Feeds `text` to a decoder in pieces of `step` bytes, as a connection would (unconsumed
// bytes stay in front of the next piece).
ChunkedDecoder::State Decode(const std::string& text, size_t step, int64_t max_body,
                             std::string* body, std::string* rest, HeadError* error) {
  ChunkedDecoder d(max_body);
  std::string pending;
  size_t fed = 0;
  ChunkedDecoder::State s = ChunkedDecoder::State::kNeedMore;
  while (s == ChunkedDecoder::State::kNeedMore && fed < text.size()) {
    pending += text.substr(fed, step);
    fed += step;
    size_t used = 0;
    s = d.Feed(pending, &used, body);
    pending.erase(0, used);
  }
  *rest = pending + (fed < text.size() ? text.substr(fed) : "");
  *error = d.error();
  return s;
}

TEST(ChunkedBody, DecodesInAnyPiecesAndLeavesTheNextRequest) {
  const std::string text =
      "5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nTrailer: x\r\n\r\nGET / HTTP/1.1";
  for (size_t step : {1, 2, 3, 7, 1000}) {
    std::string body, rest;
    HeadError e;
    EXPECT_EQ(Decode(text, step, 100, &body, &rest, &e), ChunkedDecoder::State::kDone)
        << step << ": " << e.message;
    EXPECT_EQ(body, "hello, world") << step;
    EXPECT_EQ(rest, "GET / HTTP/1.1") << step;
  }
}

TEST(ChunkedBody, LimitAndMalformedFramingAreRefused) {
  std::string body, rest;
  HeadError e;
  // Refused at the chunk size, before the data is held.
  EXPECT_EQ(Decode("8000000\r\n", 1000, 1 << 20, &body, &rest, &e),
            ChunkedDecoder::State::kError);
  EXPECT_EQ(e.status, 413);
  EXPECT_TRUE(body.empty());
  // Many small chunks add up.
  std::string many;
  for (int i = 0; i < 200; ++i) many += "a\r\n0123456789\r\n";
  body.clear();
  EXPECT_EQ(Decode(many, 64, 1000, &body, &rest, &e), ChunkedDecoder::State::kError);
  EXPECT_EQ(e.status, 413);
  EXPECT_LE(body.size(), 1000u);
  for (const char* bad : {"zz\r\n", "5\r\nhelloXX", "-1\r\n", "\r\n", "1234567890abcdef0\r\n"}) {
    body.clear();
    EXPECT_EQ(Decode(bad, 3, 1 << 20, &body, &rest, &e), ChunkedDecoder::State::kError) << bad;
    EXPECT_EQ(e.status, 400) << bad;
  }
  // A chunk-size line that never ends.
  body.clear();
  EXPECT_EQ(Decode("1" + std::string(5000, ' '), 100, 1 << 20, &body, &rest, &e),
            ChunkedDecoder::State::kError);
}

}  // namespace
}  // namespace dsv4::http
