// Errors as the OpenAI API reports them: an HTTP status plus
// {"error": {"message": ..., "type": ..., "param": ..., "code": ...}}, and ApiResult<T>, the
// value of a parsed request or the error to send back instead. Plain data; thread-compatible.
#pragma once

#include <string>
#include <utility>
#include <variant>

#include "core/check.h"
#include "core/status.h"

namespace dsv4::server {

struct ApiError {
  int http_status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // the request field at fault; empty -> null
  std::string code;   // a machine-readable reason; empty -> null
};

// 400 invalid_request_error naming `param`.
ApiError BadRequest(std::string message, std::string param = "", std::string code = "");

// The error's JSON body.
std::string ErrorBody(const ApiError& e);

// Maps an engine or tokenizer Status onto the API: InvalidArgument / OutOfRange -> 400,
// ResourceExhausted -> 429 (the engine's only transient refusal: a full queue; a request that
// can never fit is OutOfRange), NotFound -> 404, anything else -> 500.
ApiError FromStatus(const Status& s, std::string param = "");

// 503 service_unavailable for an engine that can serve nothing more (Engine::unavailable():
// a data-parallel rank failed), with its reason.
ApiError Unavailable(std::string why);

// A parsed value or the ApiError to answer with. Accessing value() of an error is a bug.
template <typename T>
class [[nodiscard]] ApiResult {
 public:
  ApiResult(T value) : v_(std::move(value)) {}         // NOLINT: implicit by design
  ApiResult(ApiError error) : v_(std::move(error)) {}  // NOLINT: implicit by design

  bool ok() const { return std::holds_alternative<T>(v_); }
  const ApiError& error() const {
    DSV4_CHECK(!ok());
    return std::get<ApiError>(v_);
  }
  T& value() {
    DSV4_CHECK_MSG(ok(), std::get<ApiError>(v_).message);
    return std::get<T>(v_);
  }
  const T& value() const {
    DSV4_CHECK_MSG(ok(), std::get<ApiError>(v_).message);
    return std::get<T>(v_);
  }

 private:
  std::variant<T, ApiError> v_;
};

}  // namespace dsv4::server
