// UTF-8 classification and sanitising (utf8.h), checked on hand-built byte strings.
#include "tokenizer/utf8.h"

#include <gtest/gtest.h>

namespace dsv4::tokenizer {
namespace {

TEST(Utf8, ScanClassifiesEachForm) {
  struct Case {
    std::string bytes;
    Utf8Step step;
    size_t length;
  };
  const Case cases[] = {
      {"a", Utf8Step::kValid, 1},
      {"\xC3\xA9", Utf8Step::kValid, 2},           // é
      {"\xE4\xB8\xAD", Utf8Step::kValid, 3},       // 中
      {"\xF0\x9F\x98\x80", Utf8Step::kValid, 4},   // 😀
      {"\xF0\x9F\x98", Utf8Step::kIncomplete, 3},  // 😀 cut short
      {"\xE4", Utf8Step::kIncomplete, 1},
      {"\x80", Utf8Step::kInvalid, 1},              // a lone continuation byte
      {"\xC0\xAF", Utf8Step::kInvalid, 1},          // overlong lead
      {"\xE0\x80\x80", Utf8Step::kInvalid, 1},      // overlong 3-byte form
      {"\xED\xA0\x80", Utf8Step::kInvalid, 1},      // a surrogate
      {"\xF4\x90\x80\x80", Utf8Step::kInvalid, 1},  // above U+10FFFF
      {"\xFF", Utf8Step::kInvalid, 1},
      {"\xE4\xB8x", Utf8Step::kInvalid, 2},  // maximal subpart E4 B8
      {"\xF0\x9F\x98x", Utf8Step::kInvalid, 3},
  };
  for (const Case& c : cases) {
    const Utf8Scan scan = ScanUtf8(c.bytes);
    EXPECT_EQ(scan.step, c.step) << testing::PrintToString(c.bytes);
    EXPECT_EQ(scan.length, c.length) << testing::PrintToString(c.bytes);
  }
}

TEST(Utf8, SanitizeReplacesEachMaximalSubpart) {
  // Unicode chapter 3 "U+FFFD substitution of maximal subparts" examples, as Python's
  // bytes.decode("utf-8", "replace") gives them.
  const std::string r(kReplacementChar);
  EXPECT_EQ(SanitizeUtf8("abc"), "abc");
  EXPECT_EQ(SanitizeUtf8("a\xFF"
                         "b"),
            "a" + r + "b");
  EXPECT_EQ(SanitizeUtf8("\xE4\xB8x"), r + "x");       // one U+FFFD for E4 B8
  EXPECT_EQ(SanitizeUtf8("\xC0\xAF"), r + r);          // C0 and AF each
  EXPECT_EQ(SanitizeUtf8("\xED\xA0\x80"), r + r + r);  // surrogate: three
  EXPECT_EQ(SanitizeUtf8("\xF0\x9F\x98"), r);          // truncated at the end: one
  EXPECT_EQ(SanitizeUtf8("\xF0\x9F\x98\x80"), "\xF0\x9F\x98\x80");
  EXPECT_TRUE(IsValidUtf8("\xE4\xB8\xAD\xE6\x96\x87"));
  EXPECT_FALSE(IsValidUtf8("\xE4\xB8"));
}

TEST(Utf8, EncodeDecodeCodePoints) {
  for (uint32_t cp :
       {0x41u, 0xE9u, 0x7FFu, 0x800u, 0x4E2Du, 0xFFFFu, 0x10000u, 0x1F600u, 0x10FFFFu}) {
    std::string s;
    AppendUtf8(cp, &s);
    size_t len = 0;
    EXPECT_EQ(DecodeUtf8(s, &len), cp);
    EXPECT_EQ(len, s.size());
  }
}

}  // namespace
}  // namespace dsv4::tokenizer
