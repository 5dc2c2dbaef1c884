// One generation request in flight, seen from an HTTP handler thread: submits it to the
// engine, reads its token events (never blocking longer than asked, so the handler can notice
// a disconnected client, the request timeout or a server shutdown), turns tokens into text
// through a TextStream (stop strings included) and records usage and timing in the metrics.
//
// A Generation holds one of the server's in-flight slots from Start until it is destroyed;
// destroying it before the engine finished the request cancels the request, which frees its
// KV pages (how a client that disconnects mid-stream gives its memory back).
// Not thread-safe: the one worker thread that handles its request uses it, streaming or not.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dsv4/engine.h"
#include "server/api_error.h"
#include "server/metrics.h"
#include "server/openai_response.h"
#include "server/text_stream.h"
#include "tokenizer/tokenizer.h"

namespace dsv4::server {

// What every Generation of one server shares. The pointers must outlive the Generations.
struct GenerationContext {
  Engine* engine = nullptr;
  const tokenizer::Tokenizer* tokenizer = nullptr;
  ServerMetrics* metrics = nullptr;
  std::atomic<int64_t>* in_flight = nullptr;  // generations holding a slot
  int64_t max_in_flight = 1;
  const std::atomic<bool>* stopping = nullptr;  // the server is shutting down
};

class Generation {
 public:
  using Clock = std::chrono::steady_clock;
  enum class State {
    kRunning,
    kFinished,  // finish_reason() says why: "stop" (EOS or a stop string) or "length"
    kFailed,    // error() says why (timeout 504, shutdown 503, engine error 500)
  };

  // Takes an in-flight slot (429 when all are taken) and submits `request` (prompt and
  // limits already checked by the caller; the engine's own refusals map through
  // FromStatus). `stop` strings end the text early. The request times out at `deadline`.
  static ApiResult<std::unique_ptr<Generation>> Start(const GenerationContext& ctx,
                                                      GenerationRequest request,
                                                      std::vector<std::string> stop,
                                                      Clock::time_point deadline);
  ~Generation();

  Generation(const Generation&) = delete;
  Generation& operator=(const Generation&) = delete;

  // Waits up to `wait` for the next token, consumes every event that is ready and returns
  // the text they released (often empty). A no-op returning "" once state() != kRunning.
  std::string Poll(std::chrono::milliseconds wait);

  State state() const { return state_; }
  std::string_view finish_reason() const { return finish_reason_; }
  const ApiError& error() const { return error_; }
  Usage usage() const { return {prompt_tokens_, completion_tokens_}; }
  RequestId id() const { return stream_->id(); }

 private:
  Generation(const GenerationContext& ctx, std::shared_ptr<RequestStream> stream,
             int64_t prompt_tokens, std::vector<std::string> stop, Clock::time_point deadline);
  void Handle(const TokenEvent& ev, std::string* out);
  void Fail(ApiError e);
  void Finish(std::string_view reason, std::string* out);
  void Report();

  GenerationContext ctx_;
  std::shared_ptr<RequestStream> stream_;
  TextStream text_;
  Clock::time_point deadline_;
  State state_ = State::kRunning;
  std::string finish_reason_;
  ApiError error_;
  bool engine_done_ = false;  // the engine finished the request, or we cancelled it
  bool reported_ = false;
  int64_t prompt_tokens_ = 0;
  int64_t completion_tokens_ = 0;
  double first_token_s_ = -1;  // since submission (TokenEvent::seconds)
  double last_token_s_ = -1;
};

}  // namespace dsv4::server
