// A command running beside a CLI test (a server, an mpirun job): a shell command in its own
// process group with stdout and stderr on a pipe, read as the test waits for text in it.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

namespace dsv4::cli_test {

// `s` quoted for /bin/sh.
inline std::string ShellQuote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

class ChildJob {
 public:
  using Clock = std::chrono::steady_clock;

  explicit ChildJob(const std::string& cmd) {
    int fds[2];
    if (pipe(fds) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      setpgid(0, 0);
      dup2(fds[1], 1);
      dup2(fds[1], 2);
      close(fds[0]);
      execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    setpgid(pid_, pid_);
    close(fds[1]);
    out_ = fds[0];
  }
  // `dsv4 <args...>` (exec'd by the shell, so the job's process is dsv4 itself).
  static std::string Dsv4Command(const std::vector<std::string>& args) {
    std::string cmd = "exec " + ShellQuote(DSV4_BIN);
    for (const std::string& a : args) cmd += " " + ShellQuote(a);
    return cmd;
  }
  ~ChildJob() {
    if (pid_ > 0 && !exited_) {
      kill(-pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) close(out_);
  }
  ChildJob(const ChildJob&) = delete;
  ChildJob& operator=(const ChildJob&) = delete;

  // Reads output until `re` matches or `limit` passes; the match's first group ("" if none).
  std::string WaitFor(const std::regex& re, std::chrono::seconds limit) {
    std::smatch m;
    ReadUntil([&] { return std::regex_search(output_, m, re); }, limit);
    if (!std::regex_search(output_, m, re)) return "";
    return m.size() > 1 ? m[1].str() : m[0].str();
  }
  // Reads output until it holds `needle` or `limit` passes.
  bool WaitForText(const std::string& needle, std::chrono::seconds limit) {
    ReadUntil([&] { return output_.find(needle) != std::string::npos; }, limit);
    return output_.find(needle) != std::string::npos;
  }
  // The exit status once the job ends within `limit`; -1 otherwise.
  int Wait(std::chrono::seconds limit) {
    const auto until = Clock::now() + limit;
    while (Clock::now() < until) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        exited_ = true;
        ReadUntil([] { return false; }, std::chrono::seconds(2));  // the rest, to EOF
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }
  // To the whole process group.
  void Signal(int sig) { kill(-pid_, sig); }
  const std::string& output() const { return output_; }

 private:
  void ReadUntil(const std::function<bool()>& done, std::chrono::seconds limit) {
    const auto until = Clock::now() + limit;
    while (!done() && Clock::now() < until) {
      pollfd p{out_, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      char buf[4096];
      const ssize_t n = read(out_, buf, sizeof(buf));
      if (n <= 0) break;
      output_.append(buf, static_cast<size_t>(n));
    }
  }

  pid_t pid_ = -1;
  int out_ = -1;
  bool exited_ = false;
  std::string output_;
};

}  // namespace dsv4::cli_test
