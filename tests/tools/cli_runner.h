// Running the dsv4 binary (and other commands) from the CLI tests: exit code and combined
// output, and fresh per-test folders under the test binary's temp dir.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <string>

namespace dsv4::cli_test {

struct CmdResult {
  int exit_code;
  std::string output;  // stdout and stderr
};

// Runs `cmd` in a shell; -1 as the exit code when it did not exit normally.
inline CmdResult Shell(const std::string& cmd) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

inline CmdResult Dsv4(const std::string& args) { return Shell(std::string(DSV4_BIN) + " " + args); }

// DSV4_TEST_TMPDIR/name, removed if present; its parent created.
inline std::filesystem::path Fresh(const std::string& name) {
  std::filesystem::path d = std::filesystem::path(DSV4_TEST_TMPDIR) / name;
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d.parent_path());
  return d;
}

}  // namespace dsv4::cli_test
