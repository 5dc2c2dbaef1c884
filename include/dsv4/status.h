// Errors as values (public API; core/status.h is the same header for the library's own code). A Status says whether an operation a user or the environment can make
// fail (bad file, bad config, bad request, out of pages) succeeded, and if not, why, in a
// message that names the thing, the expected and the actual value. Invariants that only a
// bug can break use DSV4_CHECK (check.h) instead.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>


namespace dsv4 {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,    // the caller passed something malformed (flag, config field, request)
  kNotFound,           // a file, tensor or entity that should exist does not
  kDataLoss,           // a file exists but its contents are corrupt or truncated
  kIoError,            // the OS refused (open, mmap, write, rename)
  kOutOfRange,         // a value outside the supported range
  kResourceExhausted,  // a budget (memory, KV pages, queue) is used up
  kFailedPrecondition, // the operation is valid but not in the current state
  kUnimplemented,      // a valid input that this engine does not support
  kInternal,
};

std::string_view StatusCodeName(StatusCode code);

class Status;
namespace status_internal {
// Aborts with `what` (a Result used against its contract is a bug, never a user error).
[[noreturn]] void ResultMisused(const char* what, const Status& status);
}  // namespace status_internal

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status DataLoss(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }
  static Status IoError(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
  static Status OutOfRange(std::string m) { return {StatusCode::kOutOfRange, std::move(m)}; }
  static Status ResourceExhausted(std::string m) {
    return {StatusCode::kResourceExhausted, std::move(m)};
  }
  static Status FailedPrecondition(std::string m) {
    return {StatusCode::kFailedPrecondition, std::move(m)};
  }
  static Status Unimplemented(std::string m) { return {StatusCode::kUnimplemented, std::move(m)}; }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "INVALID_ARGUMENT: <message>" or "OK".
  std::string ToString() const;

  // Returns a copy whose message is "<prefix>: <message>" (adds context on the way up).
  Status WithContext(std::string_view prefix) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// Either a value or a non-OK Status. Accessing value() of an error is a bug (checked).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT: implicit by design
    if (std::get<Status>(v_).ok()) {
      status_internal::ResultMisused("Result constructed from an OK Status", Status());
    }
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & {
    if (!ok()) status_internal::ResultMisused("value() of an error Result", status());
    return std::get<T>(v_);
  }
  const T& value() const& {
    if (!ok()) status_internal::ResultMisused("value() of an error Result", status());
    return std::get<T>(v_);
  }
  T&& value() && {
    if (!ok()) status_internal::ResultMisused("value() of an error Result", status());
    return std::get<T>(std::move(v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace dsv4

#define DSV4_STATUS_CONCAT_INNER(a, b) a##b
#define DSV4_STATUS_CONCAT(a, b) DSV4_STATUS_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function if `expr` is not OK.
#define DSV4_RETURN_IF_ERROR(expr)                  \
  do {                                              \
    ::dsv4::Status dsv4_status_ = (expr);           \
    if (!dsv4_status_.ok()) return dsv4_status_;    \
  } while (0)

// `DSV4_ASSIGN_OR_RETURN(auto x, MakeX());` declares x from the value or returns the error.
#define DSV4_ASSIGN_OR_RETURN(lhs, expr) \
  DSV4_ASSIGN_OR_RETURN_IMPL(DSV4_STATUS_CONCAT(dsv4_result_, __LINE__), lhs, expr)
#define DSV4_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()
