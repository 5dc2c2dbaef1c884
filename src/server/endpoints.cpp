#include "server/endpoints.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <functional>
#include <random>

#include "checkpoint/config.h"
#include "server/chat_stream.h"
#include "server/openai_request.h"
#include "server/openai_response.h"

namespace dsv4::server {
namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::ordered_json;

// How long one wait for tokens may block: bounds how late a handler notices a shutdown.
constexpr std::chrono::milliseconds kPollInterval(100);
// A stream idle this long gets an SSE comment line, so a client that went away while its
// request waited in the queue is noticed (writing to a closed socket fails).
constexpr std::chrono::seconds kHeartbeat(2);
// OpenAI's default for /v1/completions.
constexpr int64_t kDefaultCompletionTokens = 16;
// Chat without max_tokens: the rest of the context, but not more than this.
constexpr int64_t kDefaultChatTokens = 4096;

// Formats the events of one streamed response. One per request; not thread-safe.
class StreamFormatter {
 public:
  virtual ~StreamFormatter() = default;
  virtual std::string Begin() = 0;
  virtual std::string Text(const std::string& text) = 0;
  // The final events (the finish chunk, the usage chunk, [DONE]) or an error event.
  virtual std::string End(const Generation& g) = 0;
};

std::string ErrorEvent(const ApiError& e) {
  return "data: " + ErrorBody(e) + "\n\n" + std::string(kSseDone);
}

class CompletionFormatter : public StreamFormatter {
 public:
  CompletionFormatter(ResponseMeta meta, bool usage) : meta_(std::move(meta)), usage_(usage) {}
  std::string Begin() override { return ""; }
  std::string Text(const std::string& text) override {
    return SseEvent(CompletionChunk(meta_, text, ""));
  }
  std::string End(const Generation& g) override {
    if (g.state() == Generation::State::kFailed) return ErrorEvent(g.error());
    std::string out = SseEvent(CompletionChunk(meta_, "", g.finish_reason()));
    if (usage_) out += SseEvent(UsageChunk(meta_, "text_completion", g.usage()));
    return out + std::string(kSseDone);
  }

 private:
  ResponseMeta meta_;
  bool usage_;
};

Json DeltaJson(const ChatDelta& d) {
  Json j = Json::object();
  if (!d.reasoning.empty()) j["reasoning_content"] = d.reasoning;
  if (!d.content.empty()) j["content"] = d.content;
  return j;
}

// Gives the parsed calls their OpenAI ids.
std::vector<tokenizer::ToolCall> WithIds(std::vector<tokenizer::ToolCall> calls) {
  for (tokenizer::ToolCall& c : calls) c.id = NewToolCallId();
  return calls;
}

class ChatFormatter : public StreamFormatter {
 public:
  ChatFormatter(ResponseMeta meta, bool usage, tokenizer::ThinkingMode mode, bool tools,
                tokenizer::ChatFormat format)
      : meta_(std::move(meta)), usage_(usage), splitter_(mode, tools, format) {}
  std::string Begin() override {
    return SseEvent(ChatChunk(meta_, {{"role", "assistant"}, {"content", ""}}, ""));
  }
  std::string Text(const std::string& text) override {
    const ChatDelta d = splitter_.Feed(text);
    return d.empty() ? "" : SseEvent(ChatChunk(meta_, DeltaJson(d), ""));
  }
  std::string End(const Generation& g) override {
    if (g.state() == Generation::State::kFailed) return ErrorEvent(g.error());
    ChatTurnEnd end = splitter_.Finish();
    std::string out;
    if (!end.delta.empty()) out += SseEvent(ChatChunk(meta_, DeltaJson(end.delta), ""));
    std::string_view reason = g.finish_reason();
    if (!end.tool_calls.empty()) {
      Json delta = {{"tool_calls", ToolCallsJson(WithIds(std::move(end.tool_calls)), true)}};
      out += SseEvent(ChatChunk(meta_, std::move(delta), ""));
      reason = "tool_calls";
    }
    out += SseEvent(ChatChunk(meta_, Json::object(), reason));
    if (usage_) out += SseEvent(UsageChunk(meta_, "chat.completion.chunk", g.usage()));
    return out + std::string(kSseDone);
  }

 private:
  ResponseMeta meta_;
  bool usage_;
  ChatDeltaSplitter splitter_;
};

// Streams the generation's events as server-sent events until it ends, the client goes away
// (a failed write, or the socket closed) or the server stops. Returning destroys the
// Generation, which cancels an unfinished request and frees its KV pages.
void Stream(const ServingState& s, http::ResponseWriter& w, std::unique_ptr<Generation> g,
            std::unique_ptr<StreamFormatter> f, const http::HeaderList& headers) {
  ServerMetrics* metrics = s.generation.metrics;
  http::HeaderList h = headers;
  h.emplace_back("Cache-Control", "no-cache");
  if (!w.StartStream(200, "text/event-stream", h)) return metrics->CountAbortedStream();
  std::string out = f->Begin();
  Clock::time_point last_write = Clock::now();
  while (true) {
    const std::string text = g->Poll(kPollInterval);
    if (!text.empty()) out += f->Text(text);
    const bool ended = g->state() != Generation::State::kRunning;
    if (ended) out += f->End(*g);
    const Clock::time_point now = Clock::now();
    // An idle stream gets a comment line now and then, so a proxy does not time it out.
    if (out.empty() && now - last_write >= kHeartbeat) out = ": keep-alive\n\n";
    if (!out.empty()) {
      if (!w.Write(out)) return metrics->CountAbortedStream();
      out.clear();
      last_write = now;
    }
    if (ended) {
      if (!w.EndStream()) metrics->CountAbortedStream();
      return;
    }
    if (w.ClientGone()) return metrics->CountAbortedStream();
  }
}

// Runs a non-streaming request to its end, passing released text to `on_text`. False when
// the client went away first: the caller drops the Generation, which cancels the request.
bool RunToEnd(const ServingState& s, Generation& g, http::ResponseWriter& w,
              const std::function<void(const std::string&)>& on_text) {
  while (g.state() == Generation::State::kRunning) {
    const std::string text = g.Poll(kPollInterval);
    if (!text.empty()) on_text(text);
    if (g.state() == Generation::State::kRunning && w.ClientGone()) {
      s.generation.metrics->CountAbandonedRequest();
      w.Abandon();
      return false;
    }
  }
  return true;
}

ResponseMeta Meta(const ServingState& s, std::string_view prefix) {
  return {NewResponseId(prefix), static_cast<int64_t>(std::time(nullptr)), s.model_id};
}

// A request the engine can never run, as the OpenAI error a client acts on: 400 naming the
// field to change (a too-long prompt or output is the client's to fix, never a retry).
ApiError Unfit(const RequestCheck& check, const std::string& prompt_param,
               const std::string& max_tokens_param) {
  const std::string& m = check.status.message();
  switch (check.problem) {
    case RequestProblem::kPromptTooLong:
      return BadRequest(m, prompt_param, "context_length_exceeded");
    case RequestProblem::kContextExceeded:
      return BadRequest(m + "; lower " + max_tokens_param, max_tokens_param,
                        "context_length_exceeded");
    case RequestProblem::kKvBudgetExceeded:
      return BadRequest(m + " (the server's --kv-budget); lower " + max_tokens_param +
                            " or shorten the prompt",
                        max_tokens_param, "kv_budget_exceeded");
    default:
      return FromStatus(check.status);
  }
}

// Fills the engine request (the output defaults to `default_max_tokens`, at most what the
// context leaves) and has the engine check it.
ApiResult<GenerationRequest> BuildRequest(const ServingState& s, const GenerationParams& p,
                                          std::vector<int32_t> prompt,
                                          const std::string& prompt_param,
                                          const std::string& max_tokens_param,
                                          int64_t default_max_tokens) {
  const int64_t context = s.engine->config().max_position_embeddings;
  const int64_t n = static_cast<int64_t>(prompt.size());
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.sampling = p.sampling;
  if (!p.seeded) {
    // Without a seed, OpenAI's sampling differs between calls; the sampler is deterministic
    // per seed, so draw one.
    thread_local std::mt19937_64 rng(std::random_device{}());
    r.sampling.seed = rng();
  }
  r.stop.max_new_tokens = p.max_tokens.value_or(std::min(default_max_tokens, context - n));
  r.stop.ignore_eos = p.ignore_eos;
  r.speculative = p.speculative;
  const RequestCheck check = s.engine->Check(r);
  if (!check.ok()) return Unfit(check, prompt_param, max_tokens_param);
  return r;
}

ApiResult<nlohmann::ordered_json> ParseAndCheckModel(const ServingState& s,
                                                     const http::Request& req) {
  ApiResult<nlohmann::ordered_json> body = ParseJsonBody(req.body, s.options->max_json_depth);
  if (!body.ok()) return body;
  auto it = body.value().find("model");
  if (it != body.value().end() && it->is_string() && it->get<std::string>() != s.model_id) {
    return ApiError{404,
                    "the model '" + it->get<std::string>() + "' does not exist; this server "
                    "serves '" + s.model_id + "'",
                    "invalid_request_error", "model", "model_not_found"};
  }
  return body;
}

ApiResult<std::unique_ptr<Generation>> Submit(const ServingState& s, GenerationRequest r,
                                              const GenerationParams& p) {
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(
                                               s.options->request_timeout_s));
  return Generation::Start(s.generation, std::move(r), p.stop, deadline);
}

void SendJson(http::ResponseWriter& w, const Json& j, const http::HeaderList& headers) {
  w.Send(http::Response{200, "application/json", JsonText(j), headers});
}

}  // namespace

http::Response ErrorResponse(const ApiError& e, http::HeaderList headers) {
  if (e.http_status == 429 || e.http_status == 503) headers.emplace_back("Retry-After", "1");
  if (e.http_status == 401) headers.emplace_back("WWW-Authenticate", "Bearer");
  return http::Response{e.http_status, "application/json", ErrorBody(e), std::move(headers)};
}

void HandleCompletions(const ServingState& s, const http::Request& req, http::ResponseWriter& w,
                       const http::HeaderList& headers) {
  auto SendError = [&](const ApiError& e) { w.Send(ErrorResponse(e, headers)); };
  ApiResult<nlohmann::ordered_json> body = ParseAndCheckModel(s, req);
  if (!body.ok()) return SendError(body.error());
  ApiResult<CompletionRequest> parsed = ParseCompletionRequest(body.value());
  if (!parsed.ok()) return SendError(parsed.error());
  const CompletionRequest& c = parsed.value();
  std::vector<int32_t> prompt = c.prompt_tokens;
  if (c.prompt_text) {
    // DeepSeek's tokenizer config adds BOS to every encoded text, as vLLM does here.
    // The client writes the whole prompt here: added tokens it spells are parsed (as vLLM
    // and llama.cpp do); chat content never is (EncodeChatPrompt).
    tokenizer::EncodeOptions eo{.add_bos = s.tokenizer->bos_id().has_value(),
                                .parse_special = true};
    Result<std::vector<int32_t>> ids = s.tokenizer->Encode(*c.prompt_text, eo);
    if (!ids.ok()) return SendError(FromStatus(ids.status(), "prompt"));
    prompt = std::move(ids).value();
  }
  ApiResult<GenerationRequest> r = BuildRequest(s, c.params, std::move(prompt), "prompt",
                                                "max_tokens", kDefaultCompletionTokens);
  if (!r.ok()) return SendError(r.error());
  ApiResult<std::unique_ptr<Generation>> g = Submit(s, std::move(r.value()), c.params);
  if (!g.ok()) return SendError(g.error());
  ResponseMeta meta = Meta(s, "cmpl");
  if (c.params.stream) {
    return Stream(s, w, std::move(g.value()),
                  std::make_unique<CompletionFormatter>(meta, c.params.include_usage), headers);
  }
  Generation& gen = *g.value();
  std::string text;
  if (!RunToEnd(s, gen, w, [&](const std::string& t) { text += t; })) return;
  if (gen.state() == Generation::State::kFailed) return SendError(gen.error());
  SendJson(w, CompletionResponse(meta, text, gen.finish_reason(), gen.usage()), headers);
}

void HandleChatCompletions(const ServingState& s, const http::Request& req,
                           http::ResponseWriter& w, const http::HeaderList& headers) {
  auto SendError = [&](const ApiError& e) { w.Send(ErrorResponse(e, headers)); };
  ApiResult<nlohmann::ordered_json> body = ParseAndCheckModel(s, req);
  if (!body.ok()) return SendError(body.error());
  ApiResult<ChatRequest> parsed = ParseChatRequest(body.value());
  if (!parsed.ok()) return SendError(parsed.error());
  ChatRequest& c = parsed.value();
  c.template_options.format = s.chat_format;
  // Only the template's markers (BOS, roles, DSML) become control tokens; everything the
  // client wrote is plain text, as in DeepSeek's API.
  Result<std::vector<int32_t>> prompt =
      tokenizer::EncodeChatPrompt(*s.tokenizer, c.messages, c.tools, c.template_options);
  if (!prompt.ok()) return SendError(FromStatus(prompt.status(), "messages"));
  // The field the request limited the output with, for error messages (ParseChatRequest
  // prefers the newer name the same way).
  auto newer = body.value().find("max_completion_tokens");
  const std::string max_param = newer != body.value().end() && !newer->is_null()
                                    ? "max_completion_tokens"
                                    : "max_tokens";
  ApiResult<GenerationRequest> r = BuildRequest(s, c.params, std::move(prompt).value(),
                                                "messages", max_param, kDefaultChatTokens);
  if (!r.ok()) return SendError(r.error());
  ApiResult<std::unique_ptr<Generation>> g = Submit(s, std::move(r.value()), c.params);
  if (!g.ok()) return SendError(g.error());
  ResponseMeta meta = Meta(s, "chatcmpl");
  const tokenizer::ThinkingMode mode = c.template_options.thinking;
  const bool tools = !c.tools.is_null();
  if (c.params.stream) {
    return Stream(s, w, std::move(g.value()),
                  std::make_unique<ChatFormatter>(meta, c.params.include_usage, mode, tools,
                                                  s.chat_format),
                  headers);
  }
  Generation& gen = *g.value();
  ChatDeltaSplitter splitter(mode, tools, s.chat_format);
  ChatResult result;
  auto add = [&](const ChatDelta& d) {
    result.reasoning_content += d.reasoning;
    result.content += d.content;
  };
  if (!RunToEnd(s, gen, w, [&](const std::string& t) { add(splitter.Feed(t)); })) return;
  if (gen.state() == Generation::State::kFailed) return SendError(gen.error());
  ChatTurnEnd end = splitter.Finish();
  add(end.delta);
  result.tool_calls = WithIds(std::move(end.tool_calls));
  const std::string_view reason =
      result.tool_calls.empty() ? gen.finish_reason() : std::string_view("tool_calls");
  SendJson(w, ChatResponse(meta, result, reason, gen.usage()), headers);
}

}  // namespace dsv4::server
