// `dsv4 serve` as a process: options that would start an open or useless server are refused,
// and SIGHUP (like SIGINT and SIGTERM) shuts it down cleanly with exit status 0.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../server/raw_client.h"
#include "child_job.h"
#include "cli_runner.h"

namespace {

using ::testing::HasSubstr;
using dsv4::cli_test::Dsv4;
using dsv4::cli_test::Fresh;

// A `dsv4 serve` child with stdout and stderr on a pipe.
class ServeProcess : public dsv4::cli_test::ChildJob {
 public:
  explicit ServeProcess(std::vector<std::string> args)
      : ChildJob(Dsv4Command(WithServe(std::move(args)))) {}

 private:
  static std::vector<std::string> WithServe(std::vector<std::string> args) {
    args.insert(args.begin(), "serve");
    return args;
  }
};

TEST(ServeCli, AnEmptyApiKeyIsRefusedNotAnOpenServer) {
  ServeProcess p({"--port", "0", "--api-key", ""});
  EXPECT_EQ(p.Wait(std::chrono::seconds(30)), 1) << p.output();
  EXPECT_THAT(p.output(), HasSubstr("--api-key is empty"));
}

TEST(ServeCli, AKvBudgetThatFitsNothingIsRefusedAtStart) {
  ServeProcess p({"--port", "0", "--kv-budget", "1KiB"});
  EXPECT_EQ(p.Wait(std::chrono::seconds(30)), 1) << p.output();
  EXPECT_THAT(p.output(), HasSubstr("cannot hold even a 2-token request"));
}

TEST(ServeCli, SighupShutsDownCleanly) {
  ServeProcess p({"--port", "0", "--threads", "1"});
  ASSERT_TRUE(p.WaitForText("ready", std::chrono::seconds(60))) << p.output();
  p.Signal(SIGHUP);
  EXPECT_EQ(p.Wait(std::chrono::seconds(10)), 0) << p.output();
  EXPECT_THAT(p.output(), HasSubstr("SIGHUP received, shutting down"));
}

// The server on a make-tiny 0731 checkpoint drafts with DSpark and answers a greedy
// completion with the same text as a server without speculation.
TEST(ServeCli, DsparkCheckpointServesIdenticalCompletions) {
  const std::filesystem::path ck = Fresh("serve_dspark") / "ck";
  ASSERT_EQ(Dsv4("make-tiny --seed 5 --layout 0731 --out " + ck.string()).exit_code, 0);
  std::vector<std::string> texts;
  for (const char* mode : {"off", "dspark"}) {
    ServeProcess p({"--model", ck.string(), "--port", "0", "--threads", "1", "--speculative", mode});
    ASSERT_TRUE(p.WaitForText("/v1/chat/completions", std::chrono::seconds(60))) << p.output();
    EXPECT_THAT(p.output(), HasSubstr(std::string("speculative: ") +
                                      (mode == std::string("off") ? "off" : "dspark, 5 draft tokens")));
    const std::string& out = p.output();
    const size_t at = out.find("127.0.0.1:");
    ASSERT_NE(at, std::string::npos) << out;
    const int port = std::stoi(out.substr(at + 10));
    dsv4::server::test_support::RawClient c(port);
    ASSERT_TRUE(c.connected());
    const std::string body =
        R"({"prompt": "hello world", "max_tokens": 20, "temperature": 0, "ignore_eos": true})";
    ASSERT_TRUE(c.Send("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                       "Content-Type: application/json\r\nContent-Length: " +
                       std::to_string(body.size()) + "\r\n\r\n" + body));
    const std::string response = c.ReadToEnd(std::chrono::seconds(60));
    ASSERT_NE(response.find(" 200 "), std::string::npos) << response;
    const nlohmann::json j = nlohmann::json::parse(response.substr(response.find("\r\n\r\n") + 4));
    texts.push_back(j["choices"][0]["text"].get<std::string>());
    EXPECT_EQ(j["usage"]["completion_tokens"], 20) << response;
    p.Signal(SIGTERM);
    EXPECT_EQ(p.Wait(std::chrono::seconds(10)), 0) << p.output();
  }
  EXPECT_EQ(texts[0], texts[1]);
}

}  // namespace
