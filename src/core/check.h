// Invariant checks. DSV4_CHECK is always on (release too): a failed check is a bug in this
// program, never a user error (those are Status values). DSV4_DCHECK is for hot loops and
// compiles away in NDEBUG builds.
#pragma once

#include <string>
#include <string_view>

namespace dsv4 {
// Prints "file:line: check failed: cond (msg)" to stderr and aborts.
[[noreturn]] void CheckFailed(const char* file, int line, const char* cond, std::string_view msg);
}  // namespace dsv4

#define DSV4_CHECK(cond) \
  ((cond) ? (void)0 : ::dsv4::CheckFailed(__FILE__, __LINE__, #cond, {}))
#define DSV4_CHECK_MSG(cond, msg) \
  ((cond) ? (void)0 : ::dsv4::CheckFailed(__FILE__, __LINE__, #cond, (msg)))

#ifdef NDEBUG
#define DSV4_DCHECK(cond) ((void)0)
#else
#define DSV4_DCHECK(cond) DSV4_CHECK(cond)
#endif
