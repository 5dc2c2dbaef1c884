// The server against hostile-but-fair clients (issue #13), over loopback on the built-in tiny
// model: deeply nested JSON, trickling heads and bodies, bodies past the limit (chunked and
// length-less too), auth before the body, header floods, clients that leave a non-streaming
// request, cross-site and rebinding requests, ambiguous framing, the connection cap, and a
// shutdown with slow clients connected. Every wait is bounded.
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "checkpoint/checkpoint.h"
#include "runner/loaded_model.h"
#include "raw_client.h"
#include "server/server.h"
#include "testing/weight_generator.h"

namespace dsv4::server {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;
using test_support::RawClient;
using namespace std::chrono_literals;

constexpr char kKey[] = "hardening-key";

ServerOptions SmallServer() {
  ServerOptions o;
  o.model = []() -> Result<std::unique_ptr<runner::LoadedModel>> {
    DSV4_ASSIGN_OR_RETURN(checkpoint::Checkpoint ck, fixtures::BuiltinDefaultModel());
    return runner::LoadCheckpoint(std::move(ck), "/models/tiny");
  };
  o.port = 0;
  o.api_key = kKey;
  o.max_body_bytes = 256 << 10;
  o.max_concurrent_requests = 2;  // 10 handler threads
  o.max_connections = 48;
  o.header_timeout_s = 1;
  o.body_timeout_s = 1;
  o.idle_timeout_s = 1;
  o.engine.threads = 1;
  o.engine.prefix_caching = false;
  return o;
}

template <typename F>
bool WaitFor(F done, std::chrono::milliseconds limit = 10s) {
  const auto until = Clock::now() + limit;
  while (Clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return done();
}

// The status code of the first response in `raw` (0: none).
int StatusOf(const std::string& raw) {
  if (raw.rfind("HTTP/1.1 ", 0) != 0 || raw.size() < 12) return 0;
  return std::stoi(raw.substr(9, 3));
}

// The JSON body of the first response in `raw` (discarded when there is none).
Json BodyOf(const std::string& raw) {
  const size_t at = raw.find("\r\n\r\n");
  if (at == std::string::npos) return Json::value_t::discarded;
  return Json::parse(raw.substr(at + 4), nullptr, false);
}

// One request on a fresh connection; the whole answer (the server closes or 10 s pass).
std::string Exchange(int port, const std::string& request) {
  RawClient c(port);
  if (!c.connected() || !c.Send(request)) return c.received();
  return c.ReadToEnd(10s);
}

std::string JsonPost(const std::string& path, const std::string& body,
                     const std::string& extra_headers = "",
                     const std::string& type = "application/json") {
  return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
         "Authorization: Bearer " + std::string(kKey) + "\r\nContent-Type: " + type +
         "\r\n" + extra_headers + "Content-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

std::string Get(const std::string& path, const std::string& extra_headers = "") {
  return "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" +
         extra_headers + "\r\n";
}

const std::string kOkCompletion =
    R"({"prompt": "hi", "max_tokens": 2, "temperature": 0})";

class HardeningTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    Result<std::unique_ptr<Server>> s = Server::Start(SmallServer());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(s).value().release();
    ASSERT_TRUE(server_->LoadModel().ok());
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static int port() { return server_->port(); }
  // The server still answers a generation.
  static void ExpectServing(const std::string& after) {
    const std::string r = Exchange(port(), JsonPost("/v1/completions", kOkCompletion));
    EXPECT_EQ(StatusOf(r), 200) << "after " << after << ": " << r;
  }
  static Server* server_;
};
Server* HardeningTest::server_ = nullptr;

// Failure 1: 90,000 nested '[' crashed the process (stack overflow in the JSON parser).
TEST_F(HardeningTest, DeeplyNestedJsonIsRefusedBeforeParsing) {
  const std::string deep(90000, '[');
  for (const char* path : {"/v1/completions", "/v1/chat/completions"}) {
    const std::string r =
        Exchange(port(), JsonPost(path, "{\"prompt\": " + deep + ", \"messages\": " + deep));
    EXPECT_EQ(StatusOf(r), 400) << r.substr(0, 300);
    EXPECT_EQ(BodyOf(r)["error"]["code"], "json_too_deep") << r.substr(0, 300);
  }
  // text/plain (what a web page can send without a preflight) is refused before the body.
  const std::string plain =
      Exchange(port(), JsonPost("/v1/completions", "{\"a\": " + deep, "", "text/plain"));
  EXPECT_EQ(StatusOf(plain), 415) << plain.substr(0, 300);
  // Nesting within the limit still parses (the request is then checked as usual).
  std::string ok_deep = "{\"prompt\": \"x\", \"max_tokens\": 1, \"user\": ";
  ok_deep += std::string(60, '[') + std::string(60, ']') + "}";
  EXPECT_EQ(StatusOf(Exchange(port(), JsonPost("/v1/completions", ok_deep))), 200);
  ExpectServing("nested JSON");
}

// Failure 2: connections that trickle their head took every handler thread; /health stopped
// answering and a body at 1 byte/s was held open indefinitely.
TEST(HardeningTrickle, TricklingClientsTimeOutAndNeverStarveHealth) {
  ServerOptions o = SmallServer();
  o.header_timeout_s = 3;  // the tricklers stay unanswered at least this long
  o.body_timeout_s = 3;
  Result<std::unique_ptr<Server>> s = Server::Start(o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_TRUE(s.value()->LoadModel().ok());
  const int port = s.value()->port();
  constexpr int kTricklers = 16;  // more than the 10 handler threads
  std::vector<std::unique_ptr<RawClient>> slow;
  for (int i = 0; i < kTricklers; ++i) {
    slow.push_back(std::make_unique<RawClient>(port));
    ASSERT_TRUE(slow.back()->connected());
    ASSERT_TRUE(slow.back()->Send(i % 2 == 0 ? "POST /v1/completions HTTP/1.1\r\nHost: 1"
                                             : JsonPost("/v1/completions", kOkCompletion)
                                                   .substr(0, 170)));
  }
  std::atomic<bool> stop{false};
  std::thread trickle([&] {
    while (!stop.load()) {
      for (auto& c : slow) c->Send("2");  // a byte each, well within any per-read timeout
      std::this_thread::sleep_for(100ms);
    }
  });
  // /health and a generation are answered while every trickler still waits for its deadline
  // (were the handlers starved, they would come only after the tricklers' 408s).
  const std::string health = Exchange(port, Get("/health"));
  EXPECT_EQ(StatusOf(health), 200) << health;
  const std::string served = Exchange(port, JsonPost("/v1/completions", kOkCompletion));
  EXPECT_EQ(StatusOf(served), 200) << served;
  for (auto& c : slow) {
    EXPECT_TRUE(c->ReadUntil("HTTP/1.1", 1, 1ms).empty()) << "a trickler was answered first";
  }
  // Whole-request deadlines: every trickler gets 408 and is closed, although it keeps sending.
  for (auto& c : slow) {
    const std::string got = c->ReadToEnd(10s);
    EXPECT_EQ(StatusOf(got), 408) << got;
    EXPECT_TRUE(c->closed_by_server());
  }
  stop.store(true);
  trickle.join();
}

// Failure 2, shutdown: Stop() waited for trickling clients.
TEST(HardeningStop, StopDropsIdleAndTricklingConnectionsAtOnce) {
  ServerOptions o = SmallServer();
  o.header_timeout_s = 60;
  o.body_timeout_s = 60;
  o.idle_timeout_s = 60;
  Result<std::unique_ptr<Server>> s = Server::Start(o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_TRUE(s.value()->LoadModel().ok());
  RawClient idle(s.value()->port());
  RawClient head(s.value()->port());
  RawClient body(s.value()->port());
  ASSERT_TRUE(head.Send("POST /v1/completions HTTP/1.1\r\nHost: 127"));
  ASSERT_TRUE(body.Send(JsonPost("/v1/completions", kOkCompletion).substr(0, 190)));
  std::this_thread::sleep_for(100ms);
  const auto t0 = Clock::now();
  s.value()->Stop();
  EXPECT_LT(Clock::now() - t0, 10s);  // not the 60 s the connections could still take
  for (RawClient* c : {&idle, &head, &body}) {
    c->ReadToEnd(2s);
    EXPECT_TRUE(c->closed_by_server());
  }
}

// Failure 3: chunked and length-less bodies bypassed --max-body-bytes, and bodies were read
// before the API key was checked.
TEST_F(HardeningTest, BodyLimitHoldsForChunkedAndLengthlessBodies) {
  const std::string head = "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           "Authorization: Bearer " + std::string(kKey) + "\r\n"
                           "Content-Type: application/json\r\n";
  // One chunk announced past the limit: refused at its size line, before its data.
  RawClient big(port());
  ASSERT_TRUE(big.Send(head + "Transfer-Encoding: chunked\r\n\r\n8000000\r\n"));
  const std::string r1 = big.ReadToEnd(3s);
  EXPECT_EQ(StatusOf(r1), 413) << r1;
  EXPECT_EQ(BodyOf(r1)["error"]["code"], "request_too_large");
  // Many small chunks that add up past the limit: refused while reading.
  RawClient many(port());
  ASSERT_TRUE(many.Send(head + "Transfer-Encoding: chunked\r\n\r\n"));
  const std::string chunk = "400\r\n" + std::string(1024, 'a') + "\r\n";
  for (int i = 0; i < 300 && many.Send(chunk); ++i) {
  }
  const std::string r2 = many.ReadToEnd(3s);
  EXPECT_EQ(StatusOf(r2), 413) << r2;
  // No length at all: 411, the bytes after the head are never taken as a body.
  const std::string r3 = Exchange(port(), head + "\r\n" + std::string(100000, '{'));
  EXPECT_EQ(StatusOf(r3), 411) << r3;
  // A chunked body within the limit works.
  const std::string r4 = Exchange(
      port(), head + "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
                  "10\r\n" + kOkCompletion.substr(0, 16) + "\r\n" +
                  [&] {
                    char size[16];
                    std::snprintf(size, sizeof(size), "%zx", kOkCompletion.size() - 16);
                    return std::string(size);
                  }() +
                  "\r\n" + kOkCompletion.substr(16) + "\r\n0\r\n\r\n");
  EXPECT_EQ(StatusOf(r4), 200) << r4;
  ExpectServing("oversized bodies");
}

TEST_F(HardeningTest, ApiKeyIsCheckedBeforeTheBodyIsRead) {
  RawClient c(port());
  // Announces a body within the limit but never sends it: the 401 comes at once.
  ASSERT_TRUE(c.Send("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Authorization: Bearer wrong\r\nContent-Type: application/json\r\n"
                     "Content-Length: 200000\r\n\r\n"));
  // A 401 and not the 408 of the body deadline: the key was checked without the body.
  const std::string r = c.ReadUntil("\r\n\r\n", 1, 5s);
  EXPECT_EQ(StatusOf(r), 401) << r;
  // Over the limit and without a key: still the key first.
  const std::string r2 = Exchange(port(), "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                          "Content-Type: application/json\r\n"
                                          "Content-Length: 999999999\r\n\r\n");
  EXPECT_EQ(StatusOf(r2), 401) << r2;
}

// Failure 4: 200,000 header fields were accepted before auth.
TEST_F(HardeningTest, HeaderFloodsAreRefused) {
  RawClient c(port());
  std::string flood = "GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  for (int i = 0; i < 200000 / 50; ++i) flood += "X-Flood: 1\r\n";  // 48 KiB of fields
  c.Send(flood);  // the server may stop reading part-way
  const std::string r = c.ReadToEnd(3s);
  EXPECT_EQ(StatusOf(r), 431) << r.substr(0, 300);
  EXPECT_TRUE(c.closed_by_server());
  std::string many = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  for (int i = 0; i < 101; ++i) many += "X-" + std::to_string(i) + ": 1\r\n";
  EXPECT_EQ(StatusOf(Exchange(port(), many + "\r\n")), 431);
  ExpectServing("header floods");
}

// Failure 5: non-streaming requests kept generating after their client disconnected.
TEST_F(HardeningTest, LeavingANonStreamingRequestCancelsItAndFreesItsPages) {
  Engine& engine = *server_->engine();
  ASSERT_TRUE(WaitFor([&] { return engine.Stats().kv.used_bytes == 0; }));
  const int64_t generated_before = engine.Stats().generated_tokens;
  constexpr int kMaxTokens = 5000;
  const std::string body = Json{{"prompt", "a long story"}, {"max_tokens", kMaxTokens},
                                {"ignore_eos", true}, {"temperature", 0}}.dump();
  RawClient c(port());
  ASSERT_TRUE(c.Send(JsonPost("/v1/completions", body)));
  ASSERT_TRUE(WaitFor([&] { return engine.Stats().generated_tokens > generated_before; }));
  c.Close();
  EXPECT_TRUE(WaitFor([&] {
    const EngineStats s = engine.Stats();
    return s.running == 0 && s.waiting == 0 && s.kv.used_bytes == 0;
  })) << "KV used: " << engine.Stats().kv.used_bytes;
  EXPECT_LT(engine.Stats().generated_tokens - generated_before, kMaxTokens / 2);
  const std::string metrics = Exchange(port(), Get("/metrics"));
  EXPECT_THAT(metrics, HasSubstr("\ndsv4_requests_abandoned_total 1\n"));
  EXPECT_THAT(metrics, HasSubstr("\ndsv4_requests_in_flight 0\n"));
}

// Failure 6: a cross-site text/plain POST with a foreign Origin ran a generation; a rebound
// DNS name reached the loopback server.
TEST_F(HardeningTest, ForeignOriginsHostsAndContentTypesAreRefused) {
  const std::string evil_origin = Exchange(
      port(), JsonPost("/v1/completions", kOkCompletion, "Origin: http://evil.example\r\n"));
  EXPECT_EQ(StatusOf(evil_origin), 403) << evil_origin;
  EXPECT_EQ(BodyOf(evil_origin)["error"]["code"], "origin_not_allowed");
  const std::string text_plain = Exchange(
      port(), JsonPost("/v1/completions", kOkCompletion, "", "text/plain;charset=UTF-8"));
  EXPECT_EQ(StatusOf(text_plain), 415) << text_plain;
  std::string rebound = JsonPost("/v1/completions", kOkCompletion);
  rebound.replace(rebound.find("Host: 127.0.0.1"), 15, "Host: evil.example:8080");
  const std::string r = Exchange(port(), rebound);
  EXPECT_EQ(StatusOf(r), 403) << r;
  EXPECT_EQ(BodyOf(r)["error"]["code"], "host_not_allowed");
  // /health and /metrics are behind the same Host check.
  EXPECT_EQ(StatusOf(Exchange(port(), "GET /health HTTP/1.1\r\nHost: evil.example\r\n\r\n")),
            403);
  // Loopback names with and without a port pass.
  for (const char* host : {"localhost", "localhost:1234", "127.0.0.1:9", "[::1]:80"}) {
    const std::string ok = Exchange(
        port(), "GET /health HTTP/1.1\r\nConnection: close\r\nHost: " + std::string(host) +
                    "\r\n\r\n");
    EXPECT_EQ(StatusOf(ok), 200) << host << ": " << ok;
  }
}

TEST(HardeningCors, AnAllowedOriginGetsCorsHeadersAndAPreflight) {
  ServerOptions o = SmallServer();
  o.cors_origins = {"http://app.example"};
  o.allowed_hosts = {"api.example"};
  Result<std::unique_ptr<Server>> s = Server::Start(o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_TRUE(s.value()->LoadModel().ok());
  const int port = s.value()->port();
  auto with_host = [](std::string req) {
    return req.replace(req.find("Host: 127.0.0.1"), 15, "Host: api.example");
  };
  const std::string r = Exchange(port, with_host(JsonPost("/v1/completions", kOkCompletion,
                                                          "Origin: http://app.example\r\n")));
  EXPECT_EQ(StatusOf(r), 200) << r;
  EXPECT_THAT(r, HasSubstr("Access-Control-Allow-Origin: http://app.example\r\n"));
  const std::string pre = Exchange(
      port, "OPTIONS /v1/completions HTTP/1.1\r\nHost: api.example\r\nConnection: close\r\n"
            "Origin: http://app.example\r\nAccess-Control-Request-Method: POST\r\n\r\n");
  EXPECT_EQ(StatusOf(pre), 204) << pre;
  EXPECT_THAT(pre, HasSubstr("Access-Control-Allow-Headers: Authorization, Content-Type"));
  const std::string other = Exchange(
      port, with_host(Get("/health", "Origin: http://evil.example\r\n")));
  EXPECT_EQ(StatusOf(other), 403) << other;
  // --allowed-hosts replaces the loopback default.
  EXPECT_EQ(StatusOf(Exchange(port, Get("/health"))), 403);
}

// Failure 9: two different Content-Length values or "+N" were accepted; "-1" got a 413 after
// 5 s instead of a 400.
TEST_F(HardeningTest, AmbiguousContentLengthIsABadRequestAtOnce) {
  const std::string head = "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           "Authorization: Bearer " + std::string(kKey) + "\r\n"
                           "Content-Type: application/json\r\n";
  for (const std::string& length :
       {std::string("Content-Length: 5\r\nContent-Length: 6\r\n"),
        std::string("Content-Length: +5\r\n"), std::string("Content-Length: -1\r\n"),
        std::string("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n")}) {
    // 400 at once, not the 408 or 413 of waiting for a body.
    const std::string r = Exchange(port(), head + length + "\r\n{}{}{}");
    EXPECT_EQ(StatusOf(r), 400) << length << r;
  }
}

TEST_F(HardeningTest, KeepAlivePipeliningAndExpectContinue) {
  RawClient c(port());
  ASSERT_TRUE(c.Send("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                     "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
  const std::string two = c.ReadUntil("HTTP/1.1 200", 2, 3s);
  EXPECT_THAT(two, HasSubstr("\"status\":\"ok\""));
  EXPECT_EQ(two.find("HTTP/1.1 200", two.find("HTTP/1.1 200") + 1) != std::string::npos, true)
      << two;
  // Expect: 100-continue gets the go-ahead, then the answer.
  RawClient e(port());
  ASSERT_TRUE(e.Send("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Authorization: Bearer " + std::string(kKey) + "\r\n"
                     "Content-Type: application/json\r\nExpect: 100-continue\r\n"
                     "Content-Length: " + std::to_string(kOkCompletion.size()) + "\r\n\r\n"));
  EXPECT_THAT(e.ReadUntil("\r\n\r\n", 1, 3s), StartsWith("HTTP/1.1 100 Continue\r\n\r\n"));
  ASSERT_TRUE(e.Send(kOkCompletion));
  EXPECT_THAT(e.ReadUntil("\"usage\"", 1, 10s), HasSubstr("HTTP/1.1 200 OK"));
}

TEST(HardeningConnections, OverTheCapIsServiceUnavailableAndIdleOnesClose) {
  ServerOptions o = SmallServer();
  o.max_connections = 4;
  Result<std::unique_ptr<Server>> s = Server::Start(o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_TRUE(s.value()->LoadModel().ok());
  const int port = s.value()->port();
  std::vector<std::unique_ptr<RawClient>> idle;
  for (int i = 0; i < 4; ++i) idle.push_back(std::make_unique<RawClient>(port));
  std::this_thread::sleep_for(100ms);
  RawClient extra(port);
  const std::string r = extra.ReadToEnd(2s);
  EXPECT_EQ(StatusOf(r), 503) << r;
  EXPECT_EQ(BodyOf(r)["error"]["code"], "too_many_connections");
  // The idle ones are closed after --idle-timeout (1 s); then new clients get in.
  for (auto& c : idle) {
    c->ReadToEnd(3s);
    EXPECT_TRUE(c->closed_by_server());
  }
  EXPECT_EQ(StatusOf(Exchange(port, Get("/health"))), 200);
}

// Failure 9: a KV budget no request can fit was accepted at start.
TEST(HardeningOptions, AKvBudgetThatFitsNoRequestIsRefusedAtLoad) {
  ServerOptions o = SmallServer();
  o.engine.kv_budget_bytes = 1024;
  Result<std::unique_ptr<Server>> s = Server::Start(o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  const Status loaded = s.value()->LoadModel();
  EXPECT_EQ(loaded.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(loaded.message(), HasSubstr("cannot hold even a 2-token request"));
}

}  // namespace
}  // namespace dsv4::server
