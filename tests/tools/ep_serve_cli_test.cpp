// Data-parallel serving end to end through mpirun (OpenMPI) on one machine: `mpirun -np N
// dsv4 serve --ep N` on an ephemeral port answers completions and chat completions (streamed
// and not) with the same text as one process without speculative decoding, whichever rank
// serves them and whatever runs beside them, drafting (MTP across the ranks) or not; a client
// that disconnects cancels its request on the rank that runs it; a killed rank makes rank 0
// answer 503 naming it and the job end non-zero; a killed rank 0 makes the other ranks end
// the job, naming rank 0. Skipped when mpirun or curl is missing.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "child_job.h"
#include "cli_runner.h"

namespace {

using ::testing::HasSubstr;
using dsv4::cli_test::Shell;
using Job = dsv4::cli_test::ChildJob;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

bool HaveTools() {
  return Shell("command -v mpirun").exit_code == 0 && Shell("command -v curl").exit_code == 0;
}

std::string Launcher(int n) {
  if (n == 1) return DSV4_BIN;
  return "mpirun -np " + std::to_string(n) + " --oversubscribe --enable-recovery" +
         (geteuid() == 0 ? " --allow-run-as-root" : "") + " " + DSV4_BIN;
}

// `dsv4 serve` on an ephemeral port, one process (n = 1) or n ranks; url() once ready.
class Server {
 public:
  Server(int n, const std::string& extra = "")
      : job_(Launcher(n) + " serve --port 0 --threads 1 --kv-budget 64MiB" +
             (n > 1 ? " --ep " + std::to_string(n) : "") + extra) {
    url_ = job_.WaitFor(std::regex("listening on (http://[0-9.]+:[0-9]+)"), std::chrono::seconds(120));
    if (job_.WaitFor(std::regex("model [^ ]+ ready"), std::chrono::seconds(120)).empty()) url_.clear();
  }
  const std::string& url() const { return url_; }
  Job& job() { return job_; }

 private:
  Job job_;
  std::string url_;
};

// curl's answer: the body, then "\nHTTP <status>".
std::string Post(const std::string& url, const std::string& path, const Json& body) {
  const std::string cmd = "curl -s -N -m 120 -w '\\nHTTP %{http_code}' -H 'Content-Type: application/json' -d '" +
                          body.dump() + "' " + url + path;
  return Shell(cmd).output;
}

int StatusOf(const std::string& answer) {
  const size_t at = answer.rfind("\nHTTP ");
  return at == std::string::npos ? -1 : std::stoi(answer.substr(at + 6));
}

// The generated text of a completion or chat answer, streamed (SSE) or not.
std::string TextOf(const std::string& answer) {
  const std::string body = answer.substr(0, answer.rfind("\nHTTP "));
  auto piece = [](const Json& choice) -> std::string {
    for (const char* k : {"text"}) {
      if (choice.contains(k) && choice[k].is_string()) return choice[k].get<std::string>();
    }
    for (const char* k : {"message", "delta"}) {
      if (choice.contains(k) && choice[k].contains("content") && choice[k]["content"].is_string()) {
        return choice[k]["content"].get<std::string>();
      }
    }
    return "";
  };
  std::string text;
  if (body.rfind("data: ", 0) == 0) {
    std::regex line("data: (\\{.*\\})");
    for (std::sregex_iterator it(body.begin(), body.end(), line), end; it != end; ++it) {
      const Json j = Json::parse((*it)[1].str());
      for (const Json& c : j["choices"]) text += piece(c);
    }
    return text;
  }
  const Json j = Json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.contains("choices")) return "<no choices: " + body + ">";
  for (const Json& c : j["choices"]) text += piece(c);
  return text;
}

// The requests every run serves: greedy and seeded sampling, completions and chat, streamed
// and not.
struct Case {
  std::string path;
  Json body;
};
std::vector<Case> Cases() {
  return {
      {"/v1/completions",
       {{"prompt", {5, 17, 300, 42, 9, 11}}, {"max_tokens", 12}, {"temperature", 0}, {"ignore_eos", true}}},
      {"/v1/chat/completions",
       {{"messages", {{{"role", "user"}, {"content", "Hello there"}}}},
        {"max_tokens", 10}, {"temperature", 0.9}, {"seed", 7}, {"ignore_eos", true}}},
      {"/v1/completions",
       {{"prompt", "Once upon a time"}, {"max_tokens", 10}, {"temperature", 1.0}, {"seed", 3},
        {"stream", true}, {"ignore_eos", true}}},
  };
}

std::vector<std::string> ServeAll(const std::string& url) {
  std::vector<std::string> texts;
  for (const Case& c : Cases()) {
    const std::string a = Post(url, c.path, c.body);
    EXPECT_EQ(StatusOf(a), 200) << a;
    texts.push_back(TextOf(a));
  }
  return texts;
}

// One sample of a metric series, e.g. Metric(url, "dsv4_dp_requests_placed_total{rank=\"1\"}").
double Metric(const std::string& url, const std::string& series) {
  const std::string m = Shell("curl -s -m 10 " + url + "/metrics").output;
  const size_t at = m.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(m.substr(at + series.size() + 2));
}

// A long streamed generation in the background (a client that stays until killed).
std::unique_ptr<Job> Blocker(const std::string& url) {
  const Json body = {{"prompt", {1, 2, 3}}, {"max_tokens", 60000}, {"ignore_eos", true},
                     {"stream", true}};
  return std::make_unique<Job>("curl -s -N -m 300 -H 'Content-Type: application/json' -d '" +
                               body.dump() + "' " + url + "/v1/completions");
}

// `n` ranks serve `one` (one process's texts) alone and beside a long generation; a client's
// disconnect cancels its request on rank 1; SIGTERM to rank 0 ends the job cleanly.
void ServeOnRanks(int n, const std::vector<std::string>& one, const std::string& extra) {
  SCOPED_TRACE("--ep " + std::to_string(n) + extra);
  Server s(n, extra);
  ASSERT_FALSE(s.url().empty()) << s.job().output();
  EXPECT_THAT(s.job().output(), HasSubstr("rank 1 of " + std::to_string(n)));
  // Alone: every request goes to rank 0 (ties to the lowest rank).
  EXPECT_EQ(ServeAll(s.url()), one);
  EXPECT_EQ(Metric(s.url(), "dsv4_dp_requests_placed_total{rank=\"1\"}"), 0);
  // Beside a long generation on rank 0, the next requests go to rank 1 (least KV-loaded),
  // and their MoE rows share every step with the other rank's: still the same text.
  std::unique_ptr<Job> a = Blocker(s.url());
  const auto until = Clock::now() + std::chrono::seconds(60);
  while (Metric(s.url(), "dsv4_dp_requests_running{rank=\"0\"}") < 1 && Clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(Metric(s.url(), "dsv4_dp_requests_running{rank=\"0\"}"), 1);
  EXPECT_EQ(ServeAll(s.url()), one);
  EXPECT_EQ(Metric(s.url(), "dsv4_dp_requests_placed_total{rank=\"1\"}"), 3);
  EXPECT_GT(Metric(s.url(), "dsv4_dp_generated_tokens_total{rank=\"1\"}"), 0);
  EXPECT_GT(Metric(s.url(), "dsv4_dp_joined_steps_total{rank=\"1\"}"), 0);
  // A client that goes away: its request is cancelled on the rank that runs it.
  std::unique_ptr<Job> b = Blocker(s.url());
  while (Metric(s.url(), "dsv4_dp_requests_running{rank=\"1\"}") < 1 && Clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(Metric(s.url(), "dsv4_dp_requests_running{rank=\"1\"}"), 1);
  b->Signal(SIGKILL);
  while (Metric(s.url(), "dsv4_dp_requests_running{rank=\"1\"}") != 0 && Clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(Metric(s.url(), "dsv4_dp_requests_running{rank=\"1\"}"), 0);
  EXPECT_EQ(Metric(s.url(), "dsv4_dp_requests_running{rank=\"0\"}"), 1);  // a still runs
  a->Signal(SIGKILL);
  // SIGTERM to rank 0 shuts the server down and releases the other ranks: exit status 0.
  const std::string pid0 = s.job().WaitFor(
      std::regex("rank 0 of " + std::to_string(n) + " \\(pid ([0-9]+)\\)"), std::chrono::seconds(5));
  ASSERT_FALSE(pid0.empty()) << s.job().output();
  kill(std::stoi(pid0), SIGTERM);
  EXPECT_EQ(s.job().Wait(std::chrono::seconds(60)), 0) << s.job().output();
  EXPECT_THAT(s.job().output(), HasSubstr("rank 1: serving the requests rank 0 places here"));
  // Rank 1 drafted for its own requests and joined rank 0's drafter calls (or none at all).
  const std::string calls = s.job().WaitFor(std::regex("rank 1: [0-9]+ steps, ([0-9]+) drafter calls"),
                                            std::chrono::seconds(5));
  ASSERT_FALSE(calls.empty()) << s.job().output();
  EXPECT_EQ(std::stoll(calls) > 0, extra.find("off") == std::string::npos) << s.job().output();
}

TEST(EpServeCli, ServesTheSameTextAsOneProcessOnEveryRank) {
  if (!HaveTools()) GTEST_SKIP() << "mpirun or curl not found";
  std::vector<std::string> one;
  {
    Server s(1, " --speculative off");
    ASSERT_FALSE(s.url().empty()) << s.job().output();
    one = ServeAll(s.url());
  }
  for (const std::string& t : one) EXPECT_FALSE(t.empty());
  // Drafting on every rank (the MTP drafter's MoE exchanges rows like the target's; beside
  // the long generation both ranks draft in the same steps), and without drafts.
  ServeOnRanks(2, one, " --speculative mtp");
  ServeOnRanks(4, one, " --speculative off");
}

TEST(EpServeCli, AKilledRankMakesRankZeroAnswer503NamingIt) {
  if (!HaveTools()) GTEST_SKIP() << "mpirun or curl not found";
  Server s(2, " --ep-timeout 3");
  ASSERT_FALSE(s.url().empty()) << s.job().output();
  const std::string pid1 = s.job().WaitFor(std::regex("rank 1 of 2 \\(pid ([0-9]+)\\)"),
                                           std::chrono::seconds(5));
  ASSERT_FALSE(pid1.empty()) << s.job().output();
  // A request in flight on rank 0 when rank 1 dies.
  std::unique_ptr<Job> a = Blocker(s.url());
  const auto until = Clock::now() + std::chrono::seconds(60);
  while (Metric(s.url(), "dsv4_dp_requests_running{rank=\"0\"}") < 1 && Clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(kill(std::stoi(pid1), SIGKILL), 0);
  const std::string in_flight = a->WaitFor(std::regex("(rank 1[^\"]*)"), std::chrono::seconds(60));
  EXPECT_FALSE(in_flight.empty()) << a->output();
  // New requests: 503 naming the rank, until the job ends.
  const std::string late = Post(s.url(), "/v1/completions", Cases()[0].body);
  if (StatusOf(late) > 0) {
    EXPECT_EQ(StatusOf(late), 503) << late;
    EXPECT_THAT(late, HasSubstr("rank 1"));
  }
  const int status = s.job().Wait(std::chrono::seconds(60));
  EXPECT_NE(status, 0) << s.job().output();
  EXPECT_NE(status, -1) << "the job did not end\n" << s.job().output();
  EXPECT_THAT(s.job().output(), HasSubstr("rank 1"));
}

TEST(EpServeCli, AKilledRankZeroMakesTheOtherRanksEndTheJob) {
  // Under --enable-recovery nothing else ends the job when rank 0 dies: rank 1, idle, hears
  // rank 0's keep-alive ticks; once they stop it ends the job naming rank 0 (after
  // RootSilenceLimit: 2 x 2 + 5 s).
  if (!HaveTools()) GTEST_SKIP() << "mpirun or curl not found";
  Server s(2, " --ep-timeout 2");
  ASSERT_FALSE(s.url().empty()) << s.job().output();
  const std::string pid0 = s.job().WaitFor(std::regex("rank 0 of 2 \\(pid ([0-9]+)\\)"),
                                           std::chrono::seconds(5));
  ASSERT_FALSE(pid0.empty()) << s.job().output();
  ASSERT_TRUE(s.job().WaitForText("rank 1: serving the requests rank 0 places here",
                                  std::chrono::seconds(60)))
      << s.job().output();
  std::this_thread::sleep_for(std::chrono::seconds(2));  // a few keep-alive ticks (0.5 s)
  ASSERT_EQ(kill(std::stoi(pid0), SIGKILL), 0);
  const int status = s.job().Wait(std::chrono::seconds(60));
  EXPECT_NE(status, -1) << "the job did not end\n" << s.job().output();
  EXPECT_NE(status, 0) << s.job().output();
  EXPECT_THAT(s.job().output(), HasSubstr("error: rank 1 of 2: no message from rank 0 for"));
}

}  // namespace
