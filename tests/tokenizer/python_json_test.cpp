// PythonJsonDumps against what CPython 3's json.dumps(v, ensure_ascii=False) prints (the
// expected strings were produced by CPython and are easy to re-check by hand: ", " and ": "
// separators, keys in order, only control characters escaped).
#include "tokenizer/python_json.h"

#include <gtest/gtest.h>

namespace dsv4::tokenizer {
namespace {

using nlohmann::ordered_json;

TEST(PythonJson, SeparatorsAndKeyOrder) {
  const ordered_json v = ordered_json::parse(
      R"({"name": "get_weather", "b": [1, true, null, {}], "a": [], "z": {"y": 1, "x": 2}})");
  EXPECT_EQ(PythonJsonDumps(v),
            R"({"name": "get_weather", "b": [1, true, null, {}], "a": [], "z": {"y": 1, "x": 2}})");
}

TEST(PythonJson, StringsEscapeOnlyWhatPythonEscapes) {
  // json.dumps({"a": "\x01\x7f\u2028é\"\\", "t": "\t\n\r\b\f"}, ensure_ascii=False)
  const ordered_json v = {{"a", "\x01\x7f\xE2\x80\xA8\xC3\xA9\"\\"}, {"t", "\t\n\r\b\f"}};
  EXPECT_EQ(PythonJsonDumps(v),
            "{\"a\": \"\\u0001\x7f\xE2\x80\xA8\xC3\xA9\\\"\\\\\", \"t\": \"\\t\\n\\r\\b\\f\"}");
  EXPECT_EQ(PythonJsonDumps("中文 😀"), "\"中文 😀\"");
}

TEST(PythonJson, FloatsUsePythonsShortestForm) {
  // repr() of each value in CPython.
  const std::pair<double, const char*> cases[] = {
      {1e15, "1000000000000000.0"},
      {1e16, "1e+16"},
      {1e-5, "1e-05"},
      {0.0001, "0.0001"},
      {1.5, "1.5"},
      {123.456, "123.456"},
      {1e300, "1e+300"},
      {2.5e-7, "2.5e-07"},
      {100.0, "100.0"},
      {1e22, "1e+22"},
      {0.1 + 0.2, "0.30000000000000004"},
      {-0.0, "-0.0"},
      {12345678901234567890.0, "1.2345678901234567e+19"},
      {0.5, "0.5"},
      {-2.0, "-2.0"}};
  for (const auto& [d, text] : cases) EXPECT_EQ(PythonJsonDumps(ordered_json(d)), text) << d;
  EXPECT_EQ(PythonJsonDumps(ordered_json(-3)), "-3");
  EXPECT_EQ(PythonJsonDumps(ordered_json(12345678901234LL)), "12345678901234");
}

}  // namespace
}  // namespace dsv4::tokenizer
