#include "core/check.h"

#include <cstdio>
#include <cstdlib>

namespace dsv4 {

void CheckFailed(const char* file, int line, const char* cond, std::string_view msg) {
  std::fprintf(stderr, "%s:%d: check failed: %s", file, line, cond);
  if (!msg.empty()) std::fprintf(stderr, " (%.*s)", static_cast<int>(msg.size()), msg.data());
  std::fprintf(stderr, "\n");
  std::fflush(stderr);
  std::abort();
}

}  // namespace dsv4
