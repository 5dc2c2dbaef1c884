#include "server/api_error.h"

#include <nlohmann/json.hpp>

namespace dsv4::server {

ApiError BadRequest(std::string message, std::string param, std::string code) {
  return ApiError{400, std::move(message), "invalid_request_error", std::move(param),
                  std::move(code)};
}

std::string ErrorBody(const ApiError& e) {
  using Json = nlohmann::ordered_json;
  const Json err = {{"message", e.message},
                    {"type", e.type},
                    {"param", e.param.empty() ? Json() : Json(e.param)},
                    {"code", e.code.empty() ? Json() : Json(e.code)}};
  // Messages may quote request text; replace rather than throw on ill-formed UTF-8.
  return Json{{"error", err}}.dump(-1, ' ', false, Json::error_handler_t::replace);
}

ApiError FromStatus(const Status& s, std::string param) {
  switch (s.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange:
      return BadRequest(s.message(), std::move(param));
    case StatusCode::kResourceExhausted:
      return ApiError{429, s.message(), "rate_limit_exceeded", "", "queue_full"};
    case StatusCode::kNotFound:
      return ApiError{404, s.message(), "invalid_request_error", std::move(param), ""};
    default:
      return ApiError{500, s.message(), "server_error", "", ""};
  }
}

ApiError Unavailable(std::string why) {
  return ApiError{503, std::move(why), "service_unavailable", "", "engine_unavailable"};
}

}  // namespace dsv4::server
