// DeepSeek's pre-tokenizer (three Isolated regex splits) on hand-worked cases; each expected
// split is derived from the regexes in pre_tokenizer.h, alternative by alternative.
#include "tokenizer/pre_tokenizer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace dsv4::tokenizer {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<std::string> Split(const PreTokenizer& p, std::string_view text) {
  std::vector<std::string> out;
  for (std::string_view s : p.Split(text)) out.emplace_back(s);
  return out;
}

class DeepSeekSplit : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<std::unique_ptr<PreTokenizer>> p =
        PreTokenizer::FromJson(DeepSeekPreTokenizerJson(), "pre_tokenizer");
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    pre_ = std::move(p).value();
  }
  std::vector<std::string> S(std::string_view text) { return Split(*pre_, text); }
  std::unique_ptr<PreTokenizer> pre_;
};

TEST_F(DeepSeekSplit, DigitsInGroupsOfUpToThree) {
  EXPECT_THAT(S("1234567"), ElementsAre("123", "456", "7"));
  EXPECT_THAT(S("abc123def"), ElementsAre("abc", "123", "def"));
  // The space is its own piece after stage 1; stage 3 keeps it whole (\s+ at the end).
  EXPECT_THAT(S("12 345"), ElementsAre("12", " ", "345"));
  EXPECT_THAT(S("$100"), ElementsAre("$", "100"));
  // \p{N} covers other scripts' digits too (Arabic-Indic ٣٤ and superscript ²).
  EXPECT_THAT(S("x\xD9\xA3\xD9\xA4\xC2\xB2"), ElementsAre("x", "\xD9\xA3\xD9\xA4\xC2\xB2"));
}

TEST_F(DeepSeekSplit, CjkRunsAreIsolated) {
  EXPECT_THAT(S("中文abc"), ElementsAre("中文", "abc"));
  // Han, Hiragana and Katakana share one class, so a mixed run stays together.
  EXPECT_THAT(S("我爱ひらがなカタカナ"), ElementsAre("我爱ひらがなカタカナ"));
  // Hangul is outside the class: stage 3 treats it as letters with an optional leading space.
  EXPECT_THAT(S("안녕 한국어"), ElementsAre("안녕", " 한국어"));
  EXPECT_THAT(S("中文，好"), ElementsAre("中文", "，", "好"));
}

TEST_F(DeepSeekSplit, WordsAndPunctuation) {
  EXPECT_THAT(S("Hello, world!"), ElementsAre("Hello", ",", " world", "!"));
  // An ASCII punctuation mark followed by ASCII letters is one piece (first alternative).
  EXPECT_THAT(S("don't"), ElementsAre("don", "'t"));
  EXPECT_THAT(S("x.com"), ElementsAre("x", ".com"));
  // A space before a punctuation run joins it; newlines after it join it too.
  EXPECT_THAT(S("a == b"), ElementsAre("a", " ==", " b"));
  EXPECT_THAT(S("end.\n\nNext"), ElementsAre("end", ".\n\n", "Next"));
  // Symbols (So) count as punctuation: " 😀!" is one piece.
  EXPECT_THAT(S("hi 😀!"), ElementsAre("hi", " 😀!"));
  // Letters then combining marks: e + U+0301 stays one piece.
  EXPECT_THAT(S("cafe\xCC\x81 ok"), ElementsAre("cafe\xCC\x81", " ok"));
  // Right-to-left scripts are letters like any other.
  EXPECT_THAT(S("שלום עולם"), ElementsAre("שלום", " עולם"));
}

TEST_F(DeepSeekSplit, Whitespace) {
  // \s+(?!\S): of two spaces before a word, the first stands alone, the second joins it.
  EXPECT_THAT(S("a  b"), ElementsAre("a", " ", " b"));
  EXPECT_THAT(S("a\n\nb"), ElementsAre("a", "\n\n", "b"));
  // \s*[\r\n]+ ends at the last newline; the indentation then joins the next word.
  EXPECT_THAT(S("x\n    y"), ElementsAre("x", "\n", "   ", " y"));
  EXPECT_THAT(S("trailing   "), ElementsAre("trailing", "   "));
  EXPECT_THAT(S("\tfoo"), ElementsAre("\tfoo"));
  EXPECT_THAT(S(""), ElementsAre());
}

TEST(PreTokenizer, MatchesDeepSeeksTokenizerJson) {
  // The "pre_tokenizer" value of deepseek-ai/DeepSeek-V3's tokenizer.json, as the file spells
  // it (JSON escapes included), so the C++ string escaping of the constants is checked too.
  const json file =
      json::parse(R"json({"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"Regex": "\\p{N}{1,3}"}, "behavior": "Isolated",
     "invert": false},
    {"type": "Split", "pattern": {"Regex": "[一-龥぀-ゟ゠-ヿ]+"}, "behavior": "Isolated",
     "invert": false},
    {"type": "Split", "pattern": {"Regex":
     "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?)json"
                  R"json([\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"},
     "behavior": "Isolated", "invert": false},
    {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}
  ]})json");
  EXPECT_EQ(file, json(DeepSeekPreTokenizerJson()));
}

TEST(PreTokenizer, SplitBehaviors) {
  auto make = [](const char* behavior, bool invert) {
    json j = {{"type", "Split"},
              {"pattern", {{"String", "-"}}},
              {"behavior", behavior},
              {"invert", invert}};
    return std::move(PreTokenizer::FromJson(j, "p")).value();
  };
  EXPECT_THAT(Split(*make("Isolated", false), "a-b--c"), ElementsAre("a", "-", "b", "-", "-", "c"));
  EXPECT_THAT(Split(*make("Removed", false), "a-b--c"), ElementsAre("a", "b", "c"));
  EXPECT_THAT(Split(*make("MergedWithPrevious", false), "a-b--c"),
              ElementsAre("a-", "b-", "-", "c"));
  EXPECT_THAT(Split(*make("MergedWithNext", false), "a-b--c"), ElementsAre("a", "-b", "-", "-c"));
  EXPECT_THAT(Split(*make("Contiguous", false), "a-b--c"), ElementsAre("a", "-", "b", "--", "c"));
  EXPECT_THAT(Split(*make("Removed", true), "a-b--c"), ElementsAre("-", "-", "-"));
}

TEST(PreTokenizer, Gpt2RegexWhenByteLevelUsesRegex) {
  json j = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  auto p = std::move(PreTokenizer::FromJson(j, "p")).value();
  EXPECT_TRUE(p->byte_level());
  EXPECT_THAT(Split(*p, "Hello world's 123!"), ElementsAre("Hello", " world", "'s", " 123", "!"));
}

TEST(PreTokenizer, ErrorsNameTheStage) {
  json bad_regex = {{"type", "Sequence"},
                    {"pretokenizers", {{{"type", "Split"}, {"pattern", {{"Regex", "(ab"}}}}}}};
  Result<std::unique_ptr<PreTokenizer>> r = PreTokenizer::FromJson(bad_regex, "tok.json: pre");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("tok.json: pre.pretokenizers[0].pattern"));
  EXPECT_THAT(r.status().message(), HasSubstr("'(ab'"));

  r = PreTokenizer::FromJson(json{{"type", "Whitespace"}}, "pre");
  EXPECT_EQ(r.status().code(), StatusCode::kUnimplemented);
  EXPECT_THAT(r.status().message(), HasSubstr("Whitespace"));

  r = PreTokenizer::FromJson(json{{"type", "ByteLevel"}, {"add_prefix_space", true}}, "pre");
  EXPECT_EQ(r.status().code(), StatusCode::kUnimplemented);
  EXPECT_THAT(r.status().message(), HasSubstr("add_prefix_space"));

  r = PreTokenizer::FromJson(
      json{{"type", "Split"}, {"pattern", {{"Regex", "a"}}}, {"behavior", "Sideways"}}, "pre");
  EXPECT_THAT(r.status().message(), HasSubstr("Sideways"));
}

}  // namespace
}  // namespace dsv4::tokenizer
