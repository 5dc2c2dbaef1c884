// Parsing DeepSeek-V4 and V3.2 completions (content, reasoning, DSML tool calls) back into
// OpenAI fields; malformed DSML is an error (ParseCompletion) or plain content (the lenient
// form).
#include "tokenizer/chat_parse.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace dsv4::tokenizer {
namespace {

using ::testing::HasSubstr;

const std::string kEos = "<｜end▁of▁sentence｜>";

std::string Param(const std::string& name, bool is_string, const std::string& value) {
  return "<｜DSML｜parameter name=\"" + name + "\" string=\"" + (is_string ? "true" : "false") +
         "\">" + value + "</｜DSML｜parameter>";
}
std::string Invoke(const std::string& name, const std::vector<std::string>& params) {
  std::string out = "<｜DSML｜invoke name=\"" + name + "\">\n";
  for (size_t i = 0; i < params.size(); ++i) out += (i ? "\n" : "") + params[i];
  return out + "\n</｜DSML｜invoke>";
}
// The call block; V4 names it tool_calls, V3.2 function_calls.
std::string Block(const std::vector<std::string>& invokes,
                  const std::string& name = "tool_calls") {
  std::string out = "\n\n<｜DSML｜" + name + ">\n";
  for (size_t i = 0; i < invokes.size(); ++i) out += (i ? "\n" : "") + invokes[i];
  return out + "\n</｜DSML｜" + name + ">";
}

ParsedCompletion Parse(const std::string& text, ThinkingMode mode = ThinkingMode::kChat) {
  Result<ParsedCompletion> r = ParseCompletion(text, mode);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : ParsedCompletion{};
}

TEST(ChatParse, PlainContent) {
  ParsedCompletion p = Parse("Hello there." + kEos);
  EXPECT_EQ(p.content, "Hello there.");
  EXPECT_TRUE(p.saw_eos);
  EXPECT_TRUE(p.tool_calls.empty());
  p = Parse("cut off by max_tokens");  // no EOS: the end of the text ends the turn
  EXPECT_EQ(p.content, "cut off by max_tokens");
  EXPECT_FALSE(p.saw_eos);
}

TEST(ChatParse, Reasoning) {
  ParsedCompletion p = Parse("2+2 is 4.</think>The answer is 4." + kEos, ThinkingMode::kThinking);
  EXPECT_EQ(p.reasoning_content, "2+2 is 4.");
  EXPECT_EQ(p.content, "The answer is 4.");
  p = Parse("still thinking", ThinkingMode::kThinking);
  EXPECT_EQ(p.reasoning_content, "still thinking");
  EXPECT_EQ(p.content, "");
  // In chat mode there is no reasoning section to find.
  EXPECT_FALSE(ParseCompletion("a</think>b", ThinkingMode::kChat).ok());
}

TEST(ChatParse, OneToolCall) {
  const std::string text =
      "Let me check." +
      Block({Invoke("get_weather", {Param("city", true, "Paris"), Param("days", false, "2")})}) +
      kEos;
  ParsedCompletion p = Parse(text);
  EXPECT_EQ(p.content, "Let me check.");
  ASSERT_EQ(p.tool_calls.size(), 1u);
  EXPECT_EQ(p.tool_calls[0].name, "get_weather");
  EXPECT_EQ(p.tool_calls[0].arguments, R"({"city": "Paris", "days": 2})");
  EXPECT_TRUE(p.saw_eos);
}

TEST(ChatParse, TwoToolCallsAfterReasoning) {
  const std::string text =
      "I need both.</think>" +
      Block({Invoke("search", {Param("query", true, "He said \"hi\"\nbye")}),
             Invoke("add", {Param("a", false, "1.5"), Param("b", false, "[1, {\"x\": null}]")})});
  ParsedCompletion p = Parse(text, ThinkingMode::kThinking);
  EXPECT_EQ(p.reasoning_content, "I need both.");
  EXPECT_EQ(p.content, "");
  ASSERT_EQ(p.tool_calls.size(), 2u);
  EXPECT_EQ(p.tool_calls[0].name, "search");
  // String values become JSON strings (escaped); other values are copied as written.
  EXPECT_EQ(p.tool_calls[0].arguments, R"({"query": "He said \"hi\"\nbye"})");
  EXPECT_EQ(p.tool_calls[1].arguments, R"({"a": 1.5, "b": [1, {"x": null}]})");
  EXPECT_FALSE(p.saw_eos);
}

TEST(ChatParse, CallWithoutParameters) {
  ParsedCompletion p = Parse(Block({Invoke("now", {})}) + kEos);
  ASSERT_EQ(p.tool_calls.size(), 1u);
  EXPECT_EQ(p.tool_calls[0].name, "now");
  EXPECT_EQ(p.tool_calls[0].arguments, "{}");
}

TEST(ChatParse, RendersAndParsesBack) {
  const ToolCall call{"", "f", R"({"s": "x y", "n": 3, "l": [true, 2.5], "o": {"k": "v"}})"};
  const std::string text = "\n\n<｜DSML｜tool_calls>\n" + RenderDsmlInvoke(call).value() +
                           "\n</｜DSML｜tool_calls>" + kEos;
  ParsedCompletion p = Parse(text);
  ASSERT_EQ(p.tool_calls.size(), 1u);
  EXPECT_EQ(p.tool_calls[0].arguments, call.arguments);
}

TEST(ChatParse, MalformedIsAnError) {
  const std::string good = Invoke("f", {Param("a", true, "x")});
  struct Case {
    std::string name, text, words;
  };
  const std::vector<Case> cases = {
      {"unclosed block", "\n\n<｜DSML｜tool_calls>\n" + good + "\n", "not closed"},
      {"EOS inside the block", "\n\n<｜DSML｜tool_calls>\n" + good + kEos,
       "expected '>\\n' before a DSML invoke"},
      {"bad string flag",
       Block({"<｜DSML｜invoke name=\"f\">\n<｜DSML｜parameter name=\"a\" string=\"maybe\">x"
              "</｜DSML｜parameter>\n</｜DSML｜invoke>"}),
       "bad DSML parameter"},
      {"duplicate parameter", Block({Invoke("f", {Param("a", true, "1"), Param("a", true, "2")})}),
       "duplicate parameter 'a'"},
      {"text after the calls", Block({good}) + "trailing" + kEos, "text after the tool calls"},
      {"text after EOS", "hi" + kEos + "more", "after the end of sentence"},
      {"bad invoke header", Block({"<｜DSML｜invoke nam=\"f\">\n</｜DSML｜invoke>"}),
       "bad DSML invoke header"},
      {"DSML without the blank line", "see <｜DSML｜tool_calls>" + kEos, "contains '｜DSML｜'"},
  };
  for (const Case& c : cases) {
    Result<ParsedCompletion> r = ParseCompletion(c.text, ThinkingMode::kChat);
    ASSERT_FALSE(r.ok()) << c.name;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << c.name;
    EXPECT_THAT(r.status().message(), HasSubstr(c.words)) << c.name;
    EXPECT_THAT(r.status().message(), HasSubstr("model output")) << c.name;
  }
  Result<ParsedCompletion> r = ParseCompletion("thinking" + Block({good}), ThinkingMode::kThinking);
  EXPECT_THAT(r.status().message(), HasSubstr("inside the reasoning"));
}

TEST(ChatParse, LenientFallsBackToPlainContent) {
  const std::string bad =
      "Sure." + Block({Invoke("f", {Param("a", true, "1"), Param("a", true, "2")})});
  LenientParse l = ParseCompletionLenient("why</think>" + bad + kEos, ThinkingMode::kThinking);
  EXPECT_FALSE(l.error.ok());
  EXPECT_EQ(l.message.reasoning_content, "why");
  EXPECT_EQ(l.message.content, bad);
  EXPECT_TRUE(l.message.tool_calls.empty());
  EXPECT_TRUE(l.message.saw_eos);
  // A good completion parses normally.
  l = ParseCompletionLenient("fine" + kEos, ThinkingMode::kChat);
  EXPECT_TRUE(l.error.ok());
  EXPECT_EQ(l.message.content, "fine");
}

// P6: DeepSeek-V3.2 completions have the same grammar with a "function_calls" block.
TEST(ChatParse, V32FunctionCalls) {
  const std::string text = "R</think>Let me check." +
                           Block({Invoke("get_weather", {Param("city", true, "Paris"),
                                                         Param("days", false, "2")})},
                                 "function_calls") +
                           kEos;
  Result<ParsedCompletion> p = ParseCompletion(text, ThinkingMode::kThinking, ChatFormat::kV32);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->reasoning_content, "R");
  EXPECT_EQ(p->content, "Let me check.");
  ASSERT_EQ(p->tool_calls.size(), 1u);
  EXPECT_EQ(p->tool_calls[0].name, "get_weather");
  EXPECT_EQ(p->tool_calls[0].arguments, R"({"city": "Paris", "days": 2})");
  EXPECT_TRUE(p->saw_eos);
  EXPECT_EQ(DsmlCallsStart(ChatFormat::kV32), "\n\n<｜DSML｜function_calls");
  EXPECT_EQ(DsmlCallsStart(ChatFormat::kV4), "\n\n<｜DSML｜tool_calls");

  // Each format knows only its own block: V4's block in a V3.2 completion is malformed
  // content (and the other way round), which the lenient parse returns as text.
  const std::string v4_block = "ok" + Block({Invoke("f", {})}) + kEos;
  Result<ParsedCompletion> wrong = ParseCompletion(v4_block, ThinkingMode::kChat, ChatFormat::kV32);
  EXPECT_EQ(wrong.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(wrong.status().message(), HasSubstr("｜DSML｜"));
  LenientParse l = ParseCompletionLenient(v4_block, ThinkingMode::kChat, ChatFormat::kV32);
  EXPECT_TRUE(l.message.tool_calls.empty());
  EXPECT_EQ(l.message.content, "ok" + Block({Invoke("f", {})}));
  EXPECT_FALSE(ParseCompletion("ok" + Block({Invoke("f", {})}, "function_calls") + kEos,
                               ThinkingMode::kChat, ChatFormat::kV4)
                   .ok());
  // Plain V3.2 chat output.
  EXPECT_EQ(ParseCompletion("Hi" + kEos, ThinkingMode::kChat, ChatFormat::kV32)->content, "Hi");
}

}  // namespace
}  // namespace dsv4::tokenizer
