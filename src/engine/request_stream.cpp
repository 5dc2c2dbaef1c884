#include "dsv4/engine.h"

namespace dsv4 {

const char* FinishReasonName(FinishReason r) {
  switch (r) {
    case FinishReason::kNone: return "none";
    case FinishReason::kLength: return "length";
    case FinishReason::kStop: return "stop";
    case FinishReason::kCancelled: return "cancelled";
    case FinishReason::kError: return "error";
  }
  return "?";
}

void RequestStream::Push(TokenEvent ev) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(std::move(ev));
  }
  cv_.notify_all();
}

bool RequestStream::Next(TokenEvent* ev) {
  bool timed_out = false;
  return NextFor(ev, std::chrono::milliseconds::max(), &timed_out);
}

bool RequestStream::NextFor(TokenEvent* ev, std::chrono::milliseconds timeout, bool* timed_out) {
  std::unique_lock<std::mutex> lock(mu_);
  *timed_out = false;
  if (done_) return false;
  auto ready = [&] { return !events_.empty(); };
  if (timeout == std::chrono::milliseconds::max()) {
    cv_.wait(lock, ready);
  } else if (!cv_.wait_for(lock, timeout, ready)) {
    *timed_out = true;
    return false;
  }
  *ev = std::move(events_.front());
  events_.pop_front();
  if (ev->finished) done_ = true;
  return true;
}

}  // namespace dsv4
