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

namespace {

using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

// A `dsv4 serve` child with stdout and stderr on a pipe.
class ServeProcess {
 public:
  explicit ServeProcess(const std::vector<std::string>& args) {
    int fds[2];
    if (pipe(fds) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], 1);
      dup2(fds[1], 2);
      close(fds[0]);
      std::vector<char*> argv = {const_cast<char*>(DSV4_BIN), const_cast<char*>("serve")};
      for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(DSV4_BIN, argv.data());
      _exit(127);
    }
    close(fds[1]);
    out_ = fds[0];
  }
  ~ServeProcess() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) close(out_);
  }
  // Reads output until it holds `needle` or `limit` passes.
  bool WaitForOutput(const std::string& needle, std::chrono::seconds limit) {
    const auto until = Clock::now() + limit;
    while (Clock::now() < until && output_.find(needle) == std::string::npos) {
      pollfd p{out_, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      char buf[4096];
      const ssize_t n = read(out_, buf, sizeof(buf));
      if (n <= 0) break;
      output_.append(buf, static_cast<size_t>(n));
    }
    return output_.find(needle) != std::string::npos;
  }
  // The exit status once the process ends within `limit`; -1 otherwise.
  int Wait(std::chrono::seconds limit) {
    const auto until = Clock::now() + limit;
    while (Clock::now() < until) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        exited_ = true;
        WaitForOutput("\x01never", std::chrono::seconds(2));  // the rest, to EOF
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }
  pid_t pid() const { return pid_; }
  const std::string& output() const { return output_; }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  bool exited_ = false;
  std::string output_;
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
  ASSERT_TRUE(p.WaitForOutput("ready", std::chrono::seconds(60))) << p.output();
  kill(p.pid(), SIGHUP);
  EXPECT_EQ(p.Wait(std::chrono::seconds(10)), 0) << p.output();
  EXPECT_THAT(p.output(), HasSubstr("SIGHUP received, shutting down"));
}

}  // namespace
