// The generated tiny tokenizer (testing/tokenizer_generator.h): deterministic, loadable,
// DeepSeek's layout and pre-tokenizer, and golden encodings worked out by hand from its merge
// list. Byte ids are 3 + byte, so text outside the (ASCII) training corpus is easy to check.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "testing/tokenizer_generator.h"
#include "tokenizer/chat_format.h"
#include "tokenizer/tokenizer.h"

namespace dsv4::tokenizer {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const Tokenizer& Tiny() {
  static const std::unique_ptr<Tokenizer> t = [] {
    Result<std::string> json = fixtures::GenerateTinyTokenizerJson(512);
    DSV4_CHECK(json.ok());
    return std::move(Tokenizer::FromJson(*json, "tiny tokenizer.json")).value();
  }();
  return *t;
}

std::vector<TokenId> Enc(std::string_view text) { return Tiny().Encode(text).value(); }
TokenId Byte(char c) { return 3 + static_cast<uint8_t>(c); }

TEST(TinyTokenizer, DeterministicAndSized) {
  Result<std::string> a = fixtures::GenerateTinyTokenizerJson(512);
  Result<std::string> b = fixtures::GenerateTinyTokenizerJson(512);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(Tiny().vocab_size(), 512);
  // 512 ids: 3 sentence tokens, 256 bytes, 6 chat tokens, so 247 learned merges.
  EXPECT_EQ(Tiny().model().num_merges(), 247u);
  EXPECT_EQ(fixtures::GenerateTinyTokenizerJson(264).status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(fixtures::GenerateTinyTokenizerJson(100).status().message(), HasSubstr("265"));
}

TEST(TinyTokenizer, SpecialTokenIds) {
  EXPECT_EQ(Tiny().bos_id(), 0);
  EXPECT_EQ(Tiny().eos_id(), 1);
  EXPECT_EQ(Tiny().TokenToId("<｜▁pad▁｜>"), 2);
  EXPECT_EQ(Tiny().TokenToId(kUserToken), 506);
  EXPECT_EQ(Tiny().TokenToId(kAssistantToken), 507);
  EXPECT_EQ(Tiny().TokenToId(kThinkStartToken), 508);
  EXPECT_EQ(Tiny().TokenToId(kThinkEndToken), 509);
  EXPECT_EQ(Tiny().TokenToId(kDsmlToken), 510);
  EXPECT_EQ(Tiny().TokenToId(kLatestReminderToken), 511);
  for (TokenId id : {0, 1, 2, 506, 507, 508, 509, 510, 511}) EXPECT_TRUE(Tiny().IsSpecial(id));
  EXPECT_FALSE(Tiny().IsSpecial(Byte('a')));
}

TEST(TinyTokenizer, UsesDeepSeeksPreTokenizer) {
  nlohmann::json j = nlohmann::json::parse(fixtures::GenerateTinyTokenizerJson(512).value());
  EXPECT_EQ(j.at("pre_tokenizer"), nlohmann::json(DeepSeekPreTokenizerJson()));
}

TEST(TinyTokenizer, CorpusIsAscii) {
  // The golden encodings below rely on no non-ASCII byte having a merge.
  const std::string_view corpus = fixtures::TinyTokenizerCorpus();
  EXPECT_GT(corpus.size(), 2000u);
  for (char c : corpus) ASSERT_LT(static_cast<uint8_t>(c), 0x80) << "the corpus must be ASCII";
}

TEST(TinyTokenizer, GoldenEncodings) {
  // The first merges by rank (id = 259 + rank): 259 "Ġ t", 260 "h e", 262 "i n", 264 "Ġ a",
  // 266 "Ġt he", 271 "Ġt o", 277 "Ġ in", 284 "n d", 296 "Ġa nd", 299 "a n".
  // " the": (Ġ,t)=259 first, then (h,e)=260, then (Ġt,he)=266.
  // " and": (Ġ,a)=264, then (n,d)=284, then (Ġa,nd)=296 ((a,n)=299 was consumed by 264).
  // " to": 259 then (Ġt,o)=271. " in": (i,n)=262 beats (Ġ,i)=395, then (Ġ,in)=277.
  EXPECT_THAT(Enc(" the and to in"), ElementsAre(266, 296, 271, 277));
  // Digits are cut into "123" and "45" first; "1 2" is merge 374, nothing else applies.
  EXPECT_THAT(Enc("12345"), ElementsAre(374, Byte('3'), Byte('4'), Byte('5')));
  // Non-ASCII never occurs in the corpus: one token per byte (é = C3 A9, 中 = E4 B8 AD).
  EXPECT_THAT(Enc("é中"), ElementsAre(3 + 0xC3, 3 + 0xA9, 3 + 0xE4, 3 + 0xB8, 3 + 0xAD));
  // Chat tokens are matched before BPE; "Hi" has no merge.
  EXPECT_THAT(Enc("<｜User｜>Hi<｜Assistant｜></think>"),
              ElementsAre(506, Byte('H'), Byte('i'), 507, 509));
  EXPECT_THAT(Tiny().Encode("x", {.add_bos = true}).value(), ElementsAre(0, Byte('x')));
  EXPECT_THAT(Enc(""), ElementsAre());
}

}  // namespace
}  // namespace dsv4::tokenizer
