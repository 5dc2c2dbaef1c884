// The HTTP layer on its own (no model), so ASan and UBSan see the connection code: admission
// before the body, handler dispatch, keep-alive, chunked responses, deadlines, the connection
// cap, exceptions in handlers, and Stop() with a handler still running.
#include "http/http_server.h"

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "../server/raw_client.h"

namespace dsv4::http {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using server::test_support::RawClient;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Fixture {
  std::atomic<int> handled{0};
  std::atomic<int> logged{0};
  std::unique_ptr<HttpServer> server;

  explicit Fixture(HttpServerOptions o = Options()) {
    auto admit = [](const RequestHead& h) -> std::optional<Response> {
      if (h.path == "/refuse") return Response{403, "text/plain", "no\n", {}};
      if (h.path == "/quick") return Response{200, "text/plain", "quick\n", {}};
      return std::nullopt;
    };
    auto handle = [this](const Request& r, ResponseWriter& w) {
      ++handled;
      if (r.head.path == "/echo") {
        w.Send(Response{200, "text/plain", r.body, {}});
      } else if (r.head.path == "/stream") {
        w.StartStream(200, "text/event-stream");
        for (int i = 0; i < 3; ++i) w.Write("data: " + std::to_string(i) + "\n\n");
        w.EndStream();
      } else if (r.head.path == "/throw") {
        throw std::runtime_error("boom");
      } else if (r.head.path == "/forever") {
        while (!server->stopping().load()) std::this_thread::sleep_for(10ms);
        w.Send(Response{503, "text/plain", "stopping\n", {}});
      }  // anything else: no response (the layer sends a 500)
    };
    auto log = [this](const RequestHead&, int) { ++logged; };
    Result<std::unique_ptr<HttpServer>> s = HttpServer::Start(o, admit, handle, log);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    if (s.ok()) server = std::move(s).value();
  }
  static HttpServerOptions Options() {
    HttpServerOptions o;
    o.max_body_bytes = 1024;
    o.worker_threads = 2;
    o.max_connections = 8;
    o.idle_timeout = 500ms;
    o.header_timeout = 500ms;
    o.body_timeout = 500ms;
    return o;
  }
  int port() const { return server->port(); }
};

std::string Post(const std::string& path, const std::string& body, bool close = true) {
  return "POST " + path + " HTTP/1.1\r\nHost: x\r\n" +
         (close ? "Connection: close\r\n" : "") + "Content-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

TEST(HttpServer, EchoKeepAliveAndChunkedBodies) {
  Fixture f;
  RawClient c(f.port());
  ASSERT_TRUE(c.Send(Post("/echo", "hello", false) + Post("/echo", "again", false)));
  const std::string two = c.ReadUntil("again", 1, 3s);
  EXPECT_THAT(two, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(two, HasSubstr("Content-Length: 5\r\nConnection: keep-alive\r\n\r\nhello"));
  EXPECT_THAT(two, HasSubstr("again"));
  ASSERT_TRUE(c.Send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                     "Connection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"));
  const std::string r = c.ReadToEnd(3s);
  EXPECT_THAT(r, HasSubstr("\r\n\r\nabcde"));
  EXPECT_TRUE(c.closed_by_server());
  EXPECT_EQ(f.handled.load(), 3);
}

TEST(HttpServer, AdmitAnswersBeforeTheBodyAndHandlersStream) {
  Fixture f;
  RawClient refused(f.port());
  // The body is announced, never sent: the refusal does not wait for it.
  ASSERT_TRUE(refused.Send("POST /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"));
  EXPECT_THAT(refused.ReadToEnd(3s), StartsWith("HTTP/1.1 403 Forbidden\r\n"));
  EXPECT_TRUE(refused.closed_by_server());
  RawClient quick(f.port());
  ASSERT_TRUE(quick.Send("GET /quick HTTP/1.1\r\nHost: x\r\n\r\nGET /quick HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_THAT(quick.ReadUntil("quick\n", 2, 3s), HasSubstr("keep-alive"));
  RawClient stream(f.port());
  ASSERT_TRUE(stream.Send(Post("/stream", "")));
  const std::string s = stream.ReadToEnd(3s);
  EXPECT_THAT(s, HasSubstr("Transfer-Encoding: chunked\r\n"));
  EXPECT_THAT(s, HasSubstr("9\r\ndata: 0\n\n\r\n9\r\ndata: 1\n\n\r\n9\r\ndata: 2\n\n\r\n0\r\n\r\n"));
  EXPECT_EQ(f.handled.load(), 1);
}

TEST(HttpServer, HandlersThatThrowOrSendNothingGetA500) {
  Fixture f;
  RawClient a(f.port());
  ASSERT_TRUE(a.Send(Post("/throw", "")));
  EXPECT_THAT(a.ReadToEnd(3s), AllOf(StartsWith("HTTP/1.1 500"), HasSubstr("boom")));
  RawClient b(f.port());
  ASSERT_TRUE(b.Send(Post("/nothing", "")));
  EXPECT_THAT(b.ReadToEnd(3s), StartsWith("HTTP/1.1 500"));
}

TEST(HttpServer, LimitsAndDeadlines) {
  Fixture f;
  RawClient big(f.port());
  ASSERT_TRUE(big.Send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n"));
  EXPECT_THAT(big.ReadToEnd(3s), StartsWith("HTTP/1.1 413"));
  RawClient slow(f.port());
  ASSERT_TRUE(slow.Send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab"));
  EXPECT_THAT(slow.ReadToEnd(5s), StartsWith("HTTP/1.1 408"));
  RawClient idle(f.port());
  idle.ReadToEnd(3s);
  EXPECT_TRUE(idle.closed_by_server());
  EXPECT_EQ(f.server->stats().read_timeouts, 1);
  EXPECT_EQ(f.server->stats().malformed_requests, 1);
  EXPECT_EQ(f.handled.load(), 0);
}

TEST(HttpServer, ConnectionCapAndStopWithARunningHandler) {
  Fixture f;
  std::vector<std::unique_ptr<RawClient>> held;
  for (int i = 0; i < 8; ++i) held.push_back(std::make_unique<RawClient>(f.port()));
  ASSERT_TRUE(held[0]->Send(Post("/forever", "")));
  std::this_thread::sleep_for(100ms);
  RawClient over(f.port());
  EXPECT_THAT(over.ReadToEnd(3s), StartsWith("HTTP/1.1 503"));
  EXPECT_EQ(f.server->stats().connections_refused, 1);
  const auto t0 = Clock::now();
  f.server->Stop();
  EXPECT_LT(Clock::now() - t0, 10s);  // the handler would otherwise run forever
  // Writes fail once stopping (a graceful last answer is the server layer's, before Stop).
  EXPECT_THAT(held[0]->ReadToEnd(2s), ::testing::Not(HasSubstr("stopping")));
  for (auto& c : held) {
    c->ReadToEnd(2s);
    EXPECT_TRUE(c->closed_by_server());
  }
  EXPECT_EQ(f.server->stats().open_connections, 0);
}

}  // namespace
}  // namespace dsv4::http
