// The streaming detokenizer never emits broken UTF-8, and what it emits adds up to
// DecodeText of the same ids. The tiny tokenizer spells every non-ASCII character as one
// token per byte, so multi-byte characters are always split across tokens here.
#include "tokenizer/detokenizer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>

#include "testing/tokenizer_generator.h"
#include "tokenizer/utf8.h"

namespace dsv4::tokenizer {
namespace {

const Tokenizer& Tiny() {
  static const std::unique_ptr<Tokenizer> t =
      std::move(Tokenizer::FromJson(fixtures::GenerateTinyTokenizerJson(512).value(), "tiny")).value();
  return *t;
}

TokenId Byte(uint8_t b) { return 3 + b; }

// Feeds `ids` one by one; checks every piece is well-formed and returns the concatenation.
std::string Stream(std::span<const TokenId> ids, DecodeOptions options = {}) {
  Detokenizer d(Tiny(), options);
  std::string all;
  for (TokenId id : ids) {
    Result<std::string> piece = d.Feed(id);
    EXPECT_TRUE(piece.ok());
    EXPECT_TRUE(IsValidUtf8(*piece)) << testing::PrintToString(*piece);
    all += *piece;
  }
  const std::string tail = d.Flush();
  EXPECT_TRUE(IsValidUtf8(tail));
  return all + tail;
}

TEST(Detokenizer, HoldsBackAnUnfinishedCharacter) {
  Detokenizer d(Tiny());
  // 😀 = F0 9F 98 80: nothing comes out until the fourth byte.
  EXPECT_EQ(d.Feed(Byte(0xF0)).value(), "");
  EXPECT_EQ(d.Feed(Byte(0x9F)).value(), "");
  EXPECT_EQ(d.Feed(Byte(0x98)).value(), "");
  EXPECT_EQ(d.pending_bytes(), 3u);
  EXPECT_EQ(d.Feed(Byte(0x80)).value(), "😀");
  EXPECT_EQ(d.pending_bytes(), 0u);
  EXPECT_EQ(d.Feed(Tiny().TokenToId("Ġthe").value()).value(), " the");
  EXPECT_EQ(d.Flush(), "");
}

TEST(Detokenizer, InvalidBytesBecomeReplacementCharacters) {
  const std::string r(kReplacementChar);
  Detokenizer d(Tiny());
  EXPECT_EQ(d.Feed(Byte(0xE4)).value(), "");
  EXPECT_EQ(d.Feed(Byte(0xB8)).value(), "");
  // 'x' cannot continue E4 B8: the held bytes are one U+FFFD, then 'x'.
  EXPECT_EQ(d.Feed(Byte('x')).value(), r + "x");
  EXPECT_EQ(d.Feed(Byte(0xFF)).value(), r);  // never valid: replaced at once
  EXPECT_EQ(d.Feed(Byte(0xF0)).value(), "");
  EXPECT_EQ(d.Feed(Byte(0x9F)).value(), "");
  EXPECT_EQ(d.Flush(), r);  // cut off at the end
  EXPECT_EQ(d.pending_bytes(), 0u);
  EXPECT_EQ(d.Feed(Byte('y')).value(), "y");  // usable again after Flush
  EXPECT_EQ(d.Feed(100000).status().code(), StatusCode::kOutOfRange);
}

TEST(Detokenizer, StreamEqualsDecodeOnVariedText) {
  for (const std::string& text :
       {std::string("plain ascii"), std::string("数学是科学的语言"),
        std::string("👨‍👩‍👧‍👦 🇯🇵"), std::string("cafe\xCC\x81 שלום"),
        std::string("<｜User｜>é<｜Assistant｜>中")}) {
    const std::vector<TokenId> ids = Tiny().Encode(text).value();
    EXPECT_EQ(Stream(ids), text);
    EXPECT_EQ(Stream(ids), Tiny().Decode(ids).value());
  }
}

TEST(Detokenizer, SkipsSpecialTokensOnRequest) {
  const std::vector<TokenId> ids = Tiny().Encode("<｜Assistant｜>é<｜end▁of▁sentence｜>").value();
  EXPECT_EQ(Stream(ids, {.skip_special_tokens = true}), "é");
  EXPECT_EQ(Stream(ids), "<｜Assistant｜>é<｜end▁of▁sentence｜>");
}

TEST(Detokenizer, RandomIdsPropertyTest) {
  // Any id sequence, byte tokens included (so arbitrary, often ill-formed byte strings):
  // every piece is well-formed, and the pieces add up to DecodeText.
  std::mt19937 rng(7);
  std::uniform_int_distribution<TokenId> any_id(0, Tiny().vocab_size() - 1);
  std::uniform_int_distribution<int> high_byte(0x80, 0xFF);
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<TokenId> ids;
    const int n = trial % 40;
    for (int i = 0; i < n; ++i) {
      // Favour bytes >= 0x80 so that partial and invalid sequences are common.
      ids.push_back(rng() % 2 ? Byte(static_cast<uint8_t>(high_byte(rng))) : any_id(rng));
    }
    for (DecodeOptions options : {DecodeOptions{}, DecodeOptions{.skip_special_tokens = true}}) {
      EXPECT_EQ(Stream(ids, options), Tiny().DecodeText(ids, options).value());
    }
  }
}

}  // namespace
}  // namespace dsv4::tokenizer
