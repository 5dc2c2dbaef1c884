// The OpenAI mapping without a running server: request parsing and validation, stop strings
// on streamed text, the chat delta splitter against ParseCompletionLenient, DSML tool calls
// -> OpenAI tool_calls on hand-made completions (a random tiny model never writes DSML), the
// response shapes and the metrics format.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "testing/tokenizer_generator.h"
#include "server/chat_stream.h"
#include "server/metrics.h"
#include "server/openai_request.h"
#include "server/openai_response.h"
#include "server/text_stream.h"
#include "tokenizer/chat_format.h"
#include "tokenizer/chat_parse.h"
#include "tokenizer/tokenizer.h"

namespace dsv4::server {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::ordered_json;
using tokenizer::ThinkingMode;
using tokenizer::ToolCall;

const std::string kEos(tokenizer::kEosToken);

const tokenizer::Tokenizer& Tiny() {
  static const auto* t = tokenizer::Tokenizer::FromJson(
                             fixtures::GenerateTinyTokenizerJson(512).value(), "tiny")
                             .value()
                             .release();
  return *t;
}

Json Body(const std::string& text) { return ParseJsonBody(text).value(); }

TEST(ParseJsonBody, RefusesMalformedAndNonObjects) {
  EXPECT_TRUE(ParseJsonBody(R"({"a": 1})").ok());
  for (const char* bad : {"", "{", "{\"a\": }", "[1, 2]", "\"text\"", "42", "null"}) {
    ApiResult<Json> r = ParseJsonBody(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().http_status, 400);
    EXPECT_EQ(r.error().type, "invalid_request_error");
  }
}

TEST(ParseCompletionRequest, DefaultsAndFields) {
  ApiResult<CompletionRequest> r = ParseCompletionRequest(Body(R"({"prompt": "hi"})"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r.value().prompt_text, "hi");
  const GenerationParams& p = r.value().params;
  EXPECT_FLOAT_EQ(p.sampling.temperature, 1.0f);  // OpenAI's default
  EXPECT_FALSE(p.max_tokens.has_value());
  EXPECT_FALSE(p.stream);
  EXPECT_FALSE(p.seeded);
  EXPECT_TRUE(p.speculative);  // unless the request says "speculative": false

  r = ParseCompletionRequest(Body(R"({"model": "m", "prompt": [[5, 6, 7]], "max_tokens": 9,
      "temperature": 0, "top_p": 0.5, "top_k": -1, "seed": -1, "stop": "x", "stream": true,
      "stream_options": {"include_usage": true}, "ignore_eos": true, "n": 1, "user": "u",
      "logprobs": null, "presence_penalty": 0, "speculative": false})"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  const CompletionRequest& c = r.value();
  EXPECT_FALSE(c.prompt_text.has_value());
  EXPECT_EQ(c.prompt_tokens, (std::vector<int32_t>{5, 6, 7}));
  EXPECT_EQ(c.params.model, "m");
  EXPECT_EQ(*c.params.max_tokens, 9);
  EXPECT_EQ(c.params.sampling.top_k, 0);  // -1: no limit
  EXPECT_EQ(c.params.sampling.seed, ~uint64_t{0});
  EXPECT_TRUE(c.params.seeded);
  EXPECT_EQ(c.params.stop, std::vector<std::string>{"x"});
  EXPECT_TRUE(c.params.stream && c.params.include_usage && c.params.ignore_eos);
  EXPECT_FALSE(c.params.speculative);
}

// Each bad body gets a 400 naming the field at fault.
TEST(ParseCompletionRequest, BadValuesNameTheirField) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({})", "prompt"},
      {R"({"prompt": ""})", "prompt"},
      {R"({"prompt": 5})", "prompt"},
      {R"({"prompt": []})", "prompt"},
      {R"({"prompt": [1, -2]})", "prompt"},
      {R"({"prompt": [1, 3000000000]})", "prompt"},
      {R"({"prompt": ["a", "b"]})", "prompt"},
      {R"({"prompt": "x", "model": 3})", "model"},
      {R"({"prompt": "x", "max_tokens": 0})", "max_tokens"},
      {R"({"prompt": "x", "max_tokens": -5})", "max_tokens"},
      {R"({"prompt": "x", "max_tokens": 2.5})", "max_tokens"},
      {R"({"prompt": "x", "max_tokens": "10"})", "max_tokens"},
      {R"({"prompt": "x", "max_tokens": 1e30})", "max_tokens"},
      {R"({"prompt": "x", "max_tokens": 18446744073709551615})", "max_tokens"},
      {R"({"prompt": "x", "temperature": -0.1})", "temperature"},
      {R"({"prompt": "x", "temperature": 2.5})", "temperature"},
      {R"({"prompt": "x", "temperature": "hot"})", "temperature"},
      {R"({"prompt": "x", "top_p": 0})", "top_p"},
      {R"({"prompt": "x", "top_p": 1.5})", "top_p"},
      {R"({"prompt": "x", "top_k": -2})", "top_k"},
      {R"({"prompt": "x", "top_k": 1.5})", "top_k"},
      {R"({"prompt": "x", "seed": 1.5})", "seed"},
      {R"({"prompt": "x", "stop": 7})", "stop"},
      {R"({"prompt": "x", "stop": ["a", 7]})", "stop"},
      {R"({"prompt": "x", "stop": [""]})", "stop"},
      {R"({"prompt": "x", "stream": "yes"})", "stream"},
      {R"({"prompt": "x", "stream_options": {"include_usage": true}})", "stream_options"},
      {R"({"prompt": "x", "stream": true, "stream_options": {"include_usage": 1}})",
       "include_usage"},
      {R"({"prompt": "x", "n": 2})", "n"},
      {R"({"prompt": "x", "logprobs": 3})", "logprobs"},
      {R"({"prompt": "x", "frequency_penalty": 0.5})", "frequency_penalty"},
      {R"({"prompt": "x", "echo": true})", "echo"},
      {R"({"prompt": "x", "ignore_eos": 1})", "ignore_eos"},
      {R"({"prompt": "x", "speculative": "no"})", "speculative"},
  };
  for (const auto& [body, param] : cases) {
    ApiResult<CompletionRequest> r = ParseCompletionRequest(Body(body));
    ASSERT_FALSE(r.ok()) << body;
    EXPECT_EQ(r.error().http_status, 400) << body;
    EXPECT_EQ(r.error().param, param) << body << ": " << r.error().message;
  }
}

TEST(ParseChatRequest, MessagesToolsAndThinking) {
  ApiResult<ChatRequest> r = ParseChatRequest(Body(R"({
      "messages": [
        {"role": "system", "content": "S"},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": null, "reasoning_content": "R",
         "tool_calls": [{"id": "c1", "type": "function",
                         "function": {"name": "f", "arguments": {"x": 1}}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "42"}],
      "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
      "max_completion_tokens": 7, "max_tokens": 3,
      "reasoning_effort": "max"})"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  const ChatRequest& c = r.value();
  ASSERT_EQ(c.messages.size(), 4u);
  EXPECT_EQ(c.messages[1].content, "a\nb");
  EXPECT_EQ(c.messages[2].reasoning_content, "R");
  ASSERT_EQ(c.messages[2].tool_calls.size(), 1u);
  EXPECT_EQ(c.messages[2].tool_calls[0].arguments, R"({"x":1})");
  EXPECT_EQ(c.messages[3].tool_call_id, "c1");
  EXPECT_EQ(c.tools.size(), 1u);
  EXPECT_EQ(*c.params.max_tokens, 7);  // the newer name wins
  EXPECT_EQ(c.template_options.thinking, ThinkingMode::kThinking);
  EXPECT_EQ(c.template_options.reasoning_effort, tokenizer::ReasoningEffort::kMax);

  // tool_choice "none" hides the tools; chat_template_kwargs switches thinking off again.
  r = ParseChatRequest(Body(R"({"messages": [{"role": "user", "content": "q"}],
      "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "none",
      "reasoning_effort": "high", "chat_template_kwargs": {"thinking": false}})"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r.value().tools.is_null());
  EXPECT_EQ(r.value().template_options.thinking, ThinkingMode::kChat);
}

// reasoning_effort with DeepSeek's API names (docs/chat-format.md "Mapping an OpenAI request"),
// DeepSeek's {"thinking": {"type": ...}} switch, chat_template_kwargs, vLLM's "reasoning".
TEST(ParseChatRequest, ThinkingSwitchesAndEffort) {
  using tokenizer::ReasoningEffort;
  auto options = [](const std::string& extra) {
    ApiResult<ChatRequest> r = ParseChatRequest(
        Body(R"({"messages": [{"role": "user", "content": "q"}])" + extra + "}"));
    EXPECT_TRUE(r.ok()) << extra << ": " << (r.ok() ? "" : r.error().message);
    return r.ok() ? r.value().template_options : tokenizer::ChatTemplateOptions{};
  };
  struct Case {
    std::string extra;
    ThinkingMode thinking;
    ReasoningEffort effort;
  };
  const ThinkingMode kOn = ThinkingMode::kThinking, kOff = ThinkingMode::kChat;
  for (const Case& c : std::vector<Case>{
           {"", kOff, ReasoningEffort::kLow},  // this engine's default: chat
           {R"(, "thinking": {"type": "enabled"})", kOn, ReasoningEffort::kLow},
           {R"(, "thinking": {"type": "disabled"}, "reasoning_effort": "max")", kOff,
            ReasoningEffort::kMax},
           {R"(, "thinking": true)", kOn, ReasoningEffort::kLow},
           {R"(, "reasoning_effort": "minimal")", kOn, ReasoningEffort::kLow},
           {R"(, "reasoning_effort": "low")", kOn, ReasoningEffort::kLow},
           {R"(, "reasoning_effort": "medium")", kOn, ReasoningEffort::kHigh},
           {R"(, "reasoning_effort": "high")", kOn, ReasoningEffort::kHigh},
           {R"(, "reasoning_effort": "xhigh")", kOn, ReasoningEffort::kHigh},
           {R"(, "reasoning_effort": "max")", kOn, ReasoningEffort::kMax},
           {R"(, "reasoning_effort": "ultra")", kOn, ReasoningEffort::kMax},
           {R"(, "reasoning_effort": "none")", kOff, ReasoningEffort::kLow},
           {R"(, "chat_template_kwargs": {"reasoning_effort": "high"})", kOn,
            ReasoningEffort::kHigh},
           {R"(, "chat_template_kwargs": {"enable_thinking": true})", kOn, ReasoningEffort::kLow},
           {R"(, "reasoning_effort": "max", "chat_template_kwargs": {"thinking": false})", kOff,
            ReasoningEffort::kMax}}) {
    const tokenizer::ChatTemplateOptions o = options(c.extra);
    EXPECT_EQ(o.thinking, c.thinking) << c.extra;
    EXPECT_EQ(o.reasoning_effort, c.effort) << c.extra;
  }
  EXPECT_TRUE(options("").drop_thinking);
  EXPECT_FALSE(options(R"(, "chat_template_kwargs": {"drop_thinking": false})").drop_thinking);
}

TEST(ParseChatRequest, ReasoningTaskAndToolResultParts) {
  ApiResult<ChatRequest> r = ParseChatRequest(Body(R"({"messages": [
      {"role": "user", "content": "q", "task": "query"},
      {"role": "assistant", "content": "a", "reasoning": "vllm's name"},
      {"role": "assistant", "content": "b", "reasoning_content": "R", "reasoning": "other"},
      {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "t"},
                                                          {"type": "image_url", "image_url": {}}]}]})"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  const ChatRequest& c = r.value();
  EXPECT_EQ(c.messages[0].task, "query");
  EXPECT_EQ(c.messages[1].reasoning_content, "vllm's name");
  EXPECT_EQ(c.messages[2].reasoning_content, "R");  // reasoning_content wins
  ASSERT_EQ(c.messages[3].content_parts.size(), 2u);
  EXPECT_EQ(c.messages[3].content_parts[1].type, "image_url");
  EXPECT_EQ(c.messages[3].content, "t");
}

TEST(ParseChatRequest, BadMessagesNameTheirField) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({})", "messages"},
      {R"({"messages": []})", "messages"},
      {R"({"messages": {}})", "messages"},
      {R"({"messages": ["hi"]})", "messages[0]"},
      {R"({"messages": [{"content": "x"}]})", "messages[0].role"},
      {R"({"messages": [{"role": "wizard", "content": "x"}]})", "messages[0].role"},
      {R"({"messages": [{"role": "user"}]})", "messages[0].content"},
      {R"({"messages": [{"role": "user", "content": 5}]})", "messages[0].content"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})",
       "messages[0].content[0]"},
      {R"({"messages": [{"role": "assistant", "content": "a", "tool_calls": [{}]}]})",
       "messages[0].tool_calls[0].function.name"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tools": {}})", "tools"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]})",
       "tools[0].function.name"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tool_choice": "required"})",
       "tool_choice"},
      {R"({"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "extreme"})",
       "reasoning_effort"},
      {R"({"messages": [{"role": "user", "content": "x"}], "thinking": {"type": "on"}})",
       "thinking"},
      {R"({"messages": [{"role": "user", "content": "x"}],
          "chat_template_kwargs": {"reasoning_effort": 3}})",
       "chat_template_kwargs.reasoning_effort"},
      {R"({"messages": [{"role": "user", "content": "x", "task": 1}]})", "messages[0].task"},
      {R"({"messages": [{"role": "tool", "content": [{"type": "text"}]}]})",
       "messages[0].content[0].text"},
      {R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type":
       "json_object"}})", "response_format"},
      {R"({"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 0})",
       "max_completion_tokens"},
  };
  for (const auto& [body, param] : cases) {
    ApiResult<ChatRequest> r = ParseChatRequest(Body(body));
    ASSERT_FALSE(r.ok()) << body;
    EXPECT_EQ(r.error().http_status, 400) << body;
    EXPECT_EQ(r.error().param, param) << body << ": " << r.error().message;
  }
}

TEST(TextStream, ReleasableLengthHoldsPossibleStopStarts) {
  const std::vector<std::string> stops = {"END", "\n\n"};
  EXPECT_EQ(ReleasableLength("abc", stops), 3u);
  EXPECT_EQ(ReleasableLength("abcE", stops), 3u);
  EXPECT_EQ(ReleasableLength("abcEN", stops), 3u);
  EXPECT_EQ(ReleasableLength("abc\n", stops), 3u);
  EXPECT_EQ(ReleasableLength("abcEX", stops), 5u);
  size_t which = 9;
  EXPECT_EQ(FindFirstOf("a\n\nEND", stops, &which), 1u);
  EXPECT_EQ(which, 1u);
  EXPECT_EQ(FindFirstOf("abc", stops, &which), std::string::npos);
}

// Feeds the tokens of `text` one by one; returns the concatenated releases.
std::string Stream(const std::string& text, std::vector<std::string> stops, bool* stopped,
                   std::vector<std::string>* pieces = nullptr) {
  TextStream ts(Tiny(), std::move(stops), /*skip_token=*/1);
  std::string out;
  const std::vector<int32_t> ids = Tiny().Encode(text).value();
  for (int32_t id : ids) {
    std::string piece = ts.Feed(id).value();
    if (pieces) pieces->push_back(piece);
    out += piece;
  }
  out += ts.Finish();
  *stopped = ts.stopped();
  EXPECT_EQ(out, ts.text());
  return out;
}

TEST(TextStream, StopStringsCutTheTextBeforeTheirFirstMatch) {
  const std::string text = "The quick brown fox jumps over the lazy dog. The end.";
  bool stopped = false;
  EXPECT_EQ(Stream(text, {}, &stopped), text);
  EXPECT_FALSE(stopped);
  // The stop strings span several tokens of the tiny tokenizer.
  ASSERT_GT(Tiny().Encode("jumps over").value().size(), 2u);
  std::vector<std::string> pieces;
  EXPECT_EQ(Stream(text, {"jumps over"}, &stopped, &pieces), "The quick brown fox ");
  EXPECT_TRUE(stopped);
  for (const std::string& p : pieces) EXPECT_EQ(p.find("jump"), std::string::npos) << p;
  // The earliest match wins, whichever string it is.
  EXPECT_EQ(Stream(text, {"dog", "brown"}, &stopped), "The quick ");
  EXPECT_EQ(Stream(text, {"zebra"}, &stopped), text);
  EXPECT_FALSE(stopped);
  // Held text that never completes a stop string is released at the end.
  EXPECT_EQ(Stream("ends with The", {"The quick"}, &stopped), "ends with The");
  // Multi-byte text: releases are whole characters.
  EXPECT_EQ(Stream("中文 and 😀 then stop here", {"stop"}, &stopped), "中文 and 😀 then ");
}

TEST(TextStream, SkipsTheEosTokenText) {
  TextStream ts(Tiny(), {}, /*skip_token=*/1);
  std::string out = ts.Feed(3 + 'h').value();  // the byte token of "h"
  out += ts.Feed(1).value();
  out += ts.Finish();
  EXPECT_EQ(out, "h");
}

// Runs `text` through the splitter in pieces of `chunk` bytes.
struct Split {
  std::string reasoning, content;
  std::vector<ToolCall> calls;
};
Split SplitInChunks(const std::string& text, ThinkingMode mode, bool tools, size_t chunk,
                    tokenizer::ChatFormat format = tokenizer::ChatFormat::kV4) {
  ChatDeltaSplitter s(mode, tools, format);
  Split out;
  for (size_t i = 0; i < text.size(); i += chunk) {
    ChatDelta d = s.Feed(std::string_view(text).substr(i, chunk));
    out.reasoning += d.reasoning;
    out.content += d.content;
  }
  ChatTurnEnd end = s.Finish();
  out.reasoning += end.delta.reasoning;
  out.content += end.delta.content;
  out.calls = end.tool_calls;
  return out;
}

std::string Invoke(const std::string& name, const std::string& args) {
  return tokenizer::RenderDsmlInvoke({"", name, args}).value();
}

std::string CallsBlock(const std::vector<std::string>& invokes,
                       const std::string& name = "tool_calls") {
  std::string out = "\n\n<｜DSML｜" + name + ">\n";
  for (size_t i = 0; i < invokes.size(); ++i) out += (i ? "\n" : "") + invokes[i];
  return out + "\n</｜DSML｜" + name + ">";
}

// Streaming (any chunking) and one-shot parsing agree with ParseCompletionLenient.
TEST(ChatDeltaSplitter, MatchesTheLenientParseForAnyChunking) {
  const std::string calls =
      CallsBlock({Invoke("get_weather", R"({"city": "Paris", "days": 2})"), Invoke("now", "{}")});
  const std::vector<std::pair<std::string, ThinkingMode>> cases = {
      {"plain answer", ThinkingMode::kChat},
      {"Let me check." + calls, ThinkingMode::kChat},
      {calls, ThinkingMode::kChat},
      {"I should call it</think>Checking." + calls, ThinkingMode::kThinking},
      {"still thinking, cut off", ThinkingMode::kThinking},
      {"R</think>answer with </think> inside", ThinkingMode::kThinking},
      {"bad block\n\n<｜DSML｜tool_calls>\nnot an invoke", ThinkingMode::kChat},
      {"half a marker at the end\n\n<｜DSML｜tool", ThinkingMode::kChat},
      {"content that mentions </think>", ThinkingMode::kChat},
  };
  for (const auto& [text, mode] : cases) {
    tokenizer::LenientParse want = tokenizer::ParseCompletionLenient(text, mode);
    for (size_t chunk : {size_t{1}, size_t{2}, size_t{3}, size_t{7}, text.size()}) {
      Split got = SplitInChunks(text, mode, /*tools=*/true, chunk);
      EXPECT_EQ(got.reasoning, want.message.reasoning_content) << text << " / " << chunk;
      EXPECT_EQ(got.content, want.message.content) << text << " / " << chunk;
      ASSERT_EQ(got.calls.size(), want.message.tool_calls.size()) << text;
      for (size_t i = 0; i < got.calls.size(); ++i) {
        EXPECT_EQ(got.calls[i].name, want.message.tool_calls[i].name);
        EXPECT_EQ(got.calls[i].arguments, want.message.tool_calls[i].arguments);
      }
    }
  }
}

// A V3.2 model's calls come in a function_calls block; its splitter holds that one back.
TEST(ChatDeltaSplitter, V32FunctionCallsBlock) {
  const std::string text = "R</think>Checking." +
                           CallsBlock({Invoke("get_weather", R"({"city": "Paris"})")},
                                      "function_calls");
  for (size_t chunk : {size_t{1}, size_t{5}, text.size()}) {
    Split got = SplitInChunks(text, ThinkingMode::kThinking, true, chunk,
                              tokenizer::ChatFormat::kV32);
    EXPECT_EQ(got.reasoning, "R");
    EXPECT_EQ(got.content, "Checking.");
    ASSERT_EQ(got.calls.size(), 1u) << chunk;
    EXPECT_EQ(got.calls[0].name, "get_weather");
    EXPECT_EQ(got.calls[0].arguments, R"({"city": "Paris"})");
  }
}

TEST(ChatDeltaSplitter, WithoutToolsABlockIsPlainContent) {
  std::string text = "x";  // (not "x" + ...: GCC 12 warns falsely, -Wrestrict bug 105329)
  text += CallsBlock({Invoke("f", "{}")});
  Split got = SplitInChunks(text, ThinkingMode::kChat, /*tools=*/false, 4);
  EXPECT_EQ(got.content, text);
  EXPECT_TRUE(got.calls.empty());
}

// Tool calls round trip: OpenAI call -> DSML (as the prompt renders it) -> model output ->
// OpenAI tool_calls in the response, with the same name and arguments.
TEST(ToolCalls, RoundTripToOpenAiJson) {
  const std::string args = R"({"city": "Paris", "days": 2, "units": {"temp": "C"}})";
  const std::string completion = "Sure." + CallsBlock({Invoke("get_weather", args)}) + kEos;
  Split got = SplitInChunks(completion.substr(0, completion.size() - kEos.size()),
                            ThinkingMode::kChat, true, 5);
  ASSERT_EQ(got.calls.size(), 1u);
  ChatResult r{"", got.content, got.calls};
  r.tool_calls[0].id = NewToolCallId();
  const Json msg = ChatMessageJson(r);
  EXPECT_EQ(msg["role"], "assistant");
  EXPECT_EQ(msg["content"], "Sure.");
  ASSERT_EQ(msg["tool_calls"].size(), 1u);
  const Json& call = msg["tool_calls"][0];
  EXPECT_THAT(call["id"].get<std::string>(), ::testing::StartsWith("call_"));
  EXPECT_EQ(call["type"], "function");
  EXPECT_EQ(call["function"]["name"], "get_weather");
  EXPECT_EQ(Json::parse(call["function"]["arguments"].get<std::string>()), Json::parse(args));
  EXPECT_FALSE(call.contains("index"));

  // No text besides the calls: content is null, as OpenAI sends it.
  r.content.clear();
  EXPECT_TRUE(ChatMessageJson(r)["content"].is_null());
  const Json delta = ToolCallsJson(r.tool_calls, /*with_index=*/true);
  EXPECT_EQ(delta[0]["index"], 0);

  const Json resp = ChatResponse({"chatcmpl-x", 1, "dsv4-tiny"}, r, "tool_calls", {3, 4});
  EXPECT_EQ(resp["object"], "chat.completion");
  EXPECT_EQ(resp["choices"][0]["finish_reason"], "tool_calls");
  EXPECT_EQ(resp["usage"]["total_tokens"], 7);
}

TEST(Responses, ShapesFollowOpenAi) {
  const ResponseMeta m{"cmpl-1", 1700000000, "dsv4-tiny"};
  Json c = CompletionResponse(m, "text", "length", {5, 2});
  EXPECT_EQ(c["object"], "text_completion");
  EXPECT_EQ(c["choices"][0]["text"], "text");
  EXPECT_EQ(c["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(c["usage"]["prompt_tokens"], 5);
  EXPECT_EQ(c.begin().key(), "id");  // OpenAI's field order
  Json chunk = CompletionChunk(m, "t", "");
  EXPECT_TRUE(chunk["choices"][0]["finish_reason"].is_null());
  EXPECT_FALSE(chunk.contains("usage"));
  Json u = UsageChunk(m, "chat.completion.chunk", {1, 1});
  EXPECT_TRUE(u["choices"].empty());
  EXPECT_EQ(SseEvent(Json{{"a", 1}}), "data: {\"a\":1}\n\n");
  EXPECT_THAT(NewResponseId("chatcmpl"), ::testing::MatchesRegex("chatcmpl-[0-9a-f]{24}"));
}

TEST(Errors, OpenAiShape) {
  const Json e = Json::parse(ErrorBody(BadRequest("bad", "max_tokens")));
  EXPECT_EQ(e["error"]["message"], "bad");
  EXPECT_EQ(e["error"]["type"], "invalid_request_error");
  EXPECT_EQ(e["error"]["param"], "max_tokens");
  EXPECT_TRUE(e["error"]["code"].is_null());
  EXPECT_EQ(FromStatus(Status::ResourceExhausted("queue")).http_status, 429);
  EXPECT_EQ(FromStatus(Status::InvalidArgument("x")).http_status, 400);
  EXPECT_EQ(FromStatus(Status::Internal("x")).http_status, 500);
}

TEST(Metrics, HistogramIsCumulativeWithInf) {
  Histogram h({0.1, 1});
  h.Observe(0.05);
  h.Observe(0.1);  // le is inclusive
  h.Observe(5);
  std::string out;
  h.Render("x", &out);
  EXPECT_EQ(out,
            "x_bucket{le=\"0.1\"} 2\nx_bucket{le=\"1\"} 2\nx_bucket{le=\"+Inf\"} 3\n"
            "x_sum 5.15\nx_count 3\n");
  EXPECT_EQ(EscapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

TEST(Metrics, UnknownPathsShareOneLabel) {
  ServerMetrics m;
  m.CountRequest("/v1/completions", 200);
  m.CountRequest("/random/a", 404);
  m.CountRequest("/random/b", 404);
  const std::string text = m.Render(nullptr, "", false, 0);
  EXPECT_THAT(text, HasSubstr("dsv4_http_requests_total{endpoint=\"/v1/completions\","
                              "status=\"200\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("dsv4_http_requests_total{endpoint=\"other\",status=\"404\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("dsv4_model_ready{model=\"\"} 0\n"));
}

}  // namespace
}  // namespace dsv4::server
