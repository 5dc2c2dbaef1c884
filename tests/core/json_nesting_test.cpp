#include "core/json_nesting.h"

#include <string>

#include <gtest/gtest.h>

namespace dsv4 {
namespace {

TEST(JsonNesting, CountsArraysAndObjectsOutsideStrings) {
  EXPECT_TRUE(CheckJsonNesting("1", 0, "x").ok());
  EXPECT_TRUE(CheckJsonNesting("[]", 1, "x").ok());
  EXPECT_FALSE(CheckJsonNesting("[]", 0, "x").ok());
  EXPECT_TRUE(CheckJsonNesting(R"({"a": [1, {"b": [2]}], "c": {}})", 4, "x").ok());
  EXPECT_FALSE(CheckJsonNesting(R"({"a": [1, {"b": [2]}], "c": {}})", 3, "x").ok());
  // Brackets in strings, escaped quotes included, do not count.
  EXPECT_TRUE(CheckJsonNesting(R"(["[[[[{{{{", "\"[[[[", "\\"])", 1, "x").ok());
  // Siblings do not add up.
  EXPECT_TRUE(CheckJsonNesting("[[1],[2],[3],[[4]]]", 3, "x").ok());
}

TEST(JsonNesting, NinetyThousandBracketsAreRefusedWithTheOffset) {
  const std::string deep(90000, '[');
  const Status s = CheckJsonNesting(deep, kDefaultMaxJsonDepth, "request body");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("request body"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("limit of 64 levels"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("byte 64"), std::string::npos) << s.message();
}

TEST(JsonNesting, UnbalancedClosersDoNotUnderflow) {
  EXPECT_TRUE(CheckJsonNesting("]]]]}}}}[", 1, "x").ok());
  EXPECT_FALSE(CheckJsonNesting("]]]][[", 1, "x").ok());
}

}  // namespace
}  // namespace dsv4
