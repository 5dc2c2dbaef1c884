#include "server/generation.h"

#include <algorithm>

namespace dsv4::server {

ApiResult<std::unique_ptr<Generation>> Generation::Start(const GenerationContext& ctx,
                                                         GenerationRequest request,
                                                         std::vector<std::string> stop,
                                                         Clock::time_point deadline) {
  if (ctx.in_flight->fetch_add(1) >= ctx.max_in_flight) {
    ctx.in_flight->fetch_sub(1);
    return ApiError{429,
                    "the server is at its limit of " + std::to_string(ctx.max_in_flight) +
                        " concurrent requests (--max-concurrent-requests); retry later",
                    "rate_limit_exceeded", "", "too_many_requests"};
  }
  if (std::string why = ctx.engine->unavailable(); !why.empty()) {
    ctx.in_flight->fetch_sub(1);
    return Unavailable(why);
  }
  const int64_t prompt_tokens = static_cast<int64_t>(request.prompt.size());
  Result<std::shared_ptr<RequestStream>> stream = ctx.engine->Submit(std::move(request));
  if (!stream.ok()) {
    ctx.in_flight->fetch_sub(1);
    return FromStatus(stream.status());
  }
  return std::unique_ptr<Generation>(
      new Generation(ctx, std::move(stream).value(), prompt_tokens, std::move(stop), deadline));
}

Generation::Generation(const GenerationContext& ctx, std::shared_ptr<RequestStream> stream,
                       int64_t prompt_tokens, std::vector<std::string> stop,
                       Clock::time_point deadline)
    : ctx_(ctx),
      stream_(std::move(stream)),
      text_(*ctx.tokenizer, std::move(stop), static_cast<int32_t>(ctx.engine->eos_token_id())),
      deadline_(deadline),
      prompt_tokens_(prompt_tokens) {}

Generation::~Generation() {
  if (!engine_done_) ctx_.engine->Cancel(stream_->id());
  Report();
  ctx_.in_flight->fetch_sub(1);
}

std::string Generation::Poll(std::chrono::milliseconds wait) {
  std::string out;
  if (state_ != State::kRunning) return out;
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now());
  wait = std::clamp(left, std::chrono::milliseconds(0), wait);
  TokenEvent ev;
  bool timed_out = false;
  // The first event may take `wait`; whatever else is already queued is taken at once, so a
  // slow reader catches up in one write.
  for (bool got = stream_->NextFor(&ev, wait, &timed_out); got && state_ == State::kRunning;
       got = stream_->NextFor(&ev, std::chrono::milliseconds(0), &timed_out)) {
    Handle(ev, &out);
  }
  if (state_ != State::kRunning) return out;
  if (ctx_.stopping->load()) {
    Fail(ApiError{503, "the server is shutting down", "service_unavailable", "",
                  "shutting_down"});
  } else if (Clock::now() >= deadline_) {
    Fail(ApiError{504, "the request did not finish within --request-timeout", "timeout_error",
                  "", "request_timeout"});
  }
  return out;
}

void Generation::Handle(const TokenEvent& ev, std::string* out) {
  if (ev.finished) {
    engine_done_ = true;
    switch (ev.reason) {
      case FinishReason::kLength:
        Finish("length", out);
        return;
      case FinishReason::kStop:
        Finish("stop", out);
        return;
      case FinishReason::kCancelled:  // not by us: the engine is shutting down
        Fail(ApiError{503, "the request was cancelled by the engine", "service_unavailable", "",
                      "cancelled"});
        return;
      default:
        // A data-parallel rank that failed makes the whole engine unavailable: 503.
        if (std::string why = ctx_.engine->unavailable(); !why.empty()) {
          Fail(Unavailable(why));
          return;
        }
        Fail(ApiError{500, "engine error: " + ev.error, "server_error", "", ""});
        return;
    }
  }
  ++completion_tokens_;
  if (first_token_s_ < 0) first_token_s_ = ev.seconds;
  last_token_s_ = ev.seconds;
  Result<std::string> piece = text_.Feed(ev.token);
  if (!piece.ok()) {
    Fail(ApiError{500, "cannot decode generated token: " + piece.status().message(),
                  "server_error", "", ""});
    return;
  }
  *out += *piece;
  if (text_.stopped()) {
    // A stop string ended the text: the rest of the request is not needed.
    ctx_.engine->Cancel(stream_->id());
    engine_done_ = true;
    state_ = State::kFinished;
    finish_reason_ = "stop";
    Report();
  }
}

void Generation::Finish(std::string_view reason, std::string* out) {
  *out += text_.Finish();
  state_ = State::kFinished;
  finish_reason_ = text_.stopped() ? "stop" : std::string(reason);
  Report();
}

void Generation::Fail(ApiError e) {
  if (!engine_done_) ctx_.engine->Cancel(stream_->id());
  engine_done_ = true;
  state_ = State::kFailed;
  error_ = std::move(e);
  Report();
}

void Generation::Report() {
  if (reported_) return;
  reported_ = true;
  const double tpot = completion_tokens_ > 1 ? (last_token_s_ - first_token_s_) /
                                                   static_cast<double>(completion_tokens_ - 1)
                                             : -1;
  ctx_.metrics->CountGeneration(prompt_tokens_, completion_tokens_, first_token_s_, tpot);
}

}  // namespace dsv4::server
