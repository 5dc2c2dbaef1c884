// Tokenizer loading, errors, special-token matching and round trips, on small hand-written
// tokenizer.json files and on the generated tiny tokenizer.
#include "tokenizer/tokenizer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "testing/tokenizer_generator.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/utf8.h"

namespace dsv4::tokenizer {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const Tokenizer& Tiny() {
  static const std::unique_ptr<Tokenizer> t =
      std::move(Tokenizer::FromJson(fixtures::GenerateTinyTokenizerJson(512).value(), "tiny")).value();
  return *t;
}

// A minimal byte-level tokenizer.json: the 256 byte tokens (id = byte) plus `extra`.
json MinimalJson() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) {
    vocab[ByteLevelMap::Get().Char(static_cast<uint8_t>(b))] = b;
  }
  return json{{"added_tokens", json::array()},
              {"normalizer", nullptr},
              {"pre_tokenizer", DeepSeekPreTokenizerJson()},
              {"decoder", {{"type", "ByteLevel"}}},
              {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}}}};
}

Status LoadError(const json& j) {
  Result<std::unique_ptr<Tokenizer>> t = Tokenizer::FromJson(j.dump(), "dir/tokenizer.json");
  return t.ok() ? Status::Ok() : t.status();
}

fs::path TempDir(const std::string& name) {
  const fs::path dir = fs::path(DSV4_TEST_TMPDIR) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

TEST(TokenizerLoad, MissingFileNamesTheFolder) {
  const fs::path dir = TempDir("no_tokenizer");
  Result<std::unique_ptr<Tokenizer>> t = LoadTokenizer(dir);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(t.status().message(), "tokenizer.json not found in " + dir.string());
}

TEST(TokenizerLoad, FromFolder) {
  const fs::path dir = TempDir("with_tokenizer");
  std::ofstream(dir / "tokenizer.json") << fixtures::GenerateTinyTokenizerJson(512).value();
  Result<std::unique_ptr<Tokenizer>> t = LoadTokenizer(dir);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ((*t)->vocab_size(), 512);

  std::ofstream(dir / "tokenizer.json") << "{\"model\": ";  // truncated
  t = LoadTokenizer(dir);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kDataLoss);
  EXPECT_THAT(t.status().message(), HasSubstr((dir / "tokenizer.json").string()));
  EXPECT_THAT(t.status().message(), HasSubstr("not valid JSON"));
}

// tokenizer.json is read with a size limit (64 MiB; DeepSeek's is ~8 MB) and a nesting limit
// checked before the parser sees it, from a file and as text (the engine parses the text a
// checkpoint carries).
TEST(TokenizerLoad, DeepOrHugeFilesAreRefusedNamingTheFile) {
  const fs::path dir = TempDir("tokenizer_limits");
  const fs::path file = dir / "tokenizer.json";
  const std::string deep = R"({"model": )" + std::string(100'000, '[') + std::string(100'000, ']') + "}";
  std::ofstream(file) << deep;
  for (const Status& s : {Tokenizer::FromFile(file).status(), LoadTokenizer(dir).status(),
                          Tokenizer::FromJson(deep, file.string()).status()}) {
    EXPECT_EQ(s.code(), StatusCode::kDataLoss);
    EXPECT_THAT(s.message(),
                HasSubstr(file.string() + ": JSON nested deeper than the limit of 64 levels"));
  }
  fs::resize_file(file, (64 << 20) + 1);  // sparse
  Result<std::unique_ptr<Tokenizer>> t = LoadTokenizer(dir);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(t.status().message(), file.string() + ": tokenizer file is 67108865 bytes, more than "
                                                  "the limit of 67108864 bytes");
}

TEST(TokenizerLoad, ErrorsNameTheFieldAndValue) {
  EXPECT_TRUE(LoadError(MinimalJson()).ok()) << LoadError(MinimalJson()).ToString();
  struct Case {
    std::string name;
    std::function<void(json&)> edit;
    StatusCode code;
    std::vector<std::string> words;
  };
  const std::vector<Case> cases = {
      {"no model",
       [](json& j) { j.erase("model"); },
       StatusCode::kInvalidArgument,
       {"dir/tokenizer.json", "missing field 'model'"}},
      {"not BPE",
       [](json& j) { j["model"]["type"] = "WordPiece"; },
       StatusCode::kUnimplemented,
       {"model.type", "WordPiece"}},
      {"vocab not an object",
       [](json& j) { j["model"]["vocab"] = json::array(); },
       StatusCode::kInvalidArgument,
       {"model.vocab"}},
      {"bad id",
       [](json& j) { j["model"]["vocab"]["a"] = "seven"; },
       StatusCode::kInvalidArgument,
       {"model.vocab['a']", "\"seven\""}},
      {"duplicate id",
       [](json& j) { j["model"]["vocab"]["zz"] = 97; },
       StatusCode::kInvalidArgument,
       {"id 97", "'zz'"}},
      {"merge of unknown token",
       [](json& j) {
         j["model"]["merges"] = {"a b", "ab q"};
       },
       StatusCode::kInvalidArgument,
       {"model.merges[0]", "'ab'", "not in model.vocab"}},
      {"merge not a pair",
       [](json& j) { j["model"]["merges"] = {"abc"}; },
       StatusCode::kInvalidArgument,
       {"model.merges[0]", "'abc'"}},
      {"normalizer",
       [](json& j) {
         j["normalizer"] = {{"type", "NFC"}};
       },
       StatusCode::kUnimplemented,
       {"normalizer", "NFC"}},
      {"decoder",
       [](json& j) {
         j["decoder"] = {{"type", "WordPiece"}};
       },
       StatusCode::kUnimplemented,
       {"decoder"}},
      {"no byte level",
       [](json& j) { j["pre_tokenizer"] = nullptr; },
       StatusCode::kUnimplemented,
       {"pre_tokenizer", "ByteLevel"}},
      {"added token without content",
       [](json& j) {
         j["added_tokens"] = {{{"id", 300}, {"special", true}}};
       },
       StatusCode::kInvalidArgument,
       {"added_tokens[0].content"}},
      {"added token bad id",
       [](json& j) {
         j["added_tokens"] = {{{"id", -1}, {"content", "<x>"}}};
       },
       StatusCode::kInvalidArgument,
       {"added_tokens[0].id", "-1"}},
      {"byte fallback",
       [](json& j) { j["model"]["byte_fallback"] = true; },
       StatusCode::kUnimplemented,
       {"model.byte_fallback"}},
  };
  for (const Case& c : cases) {
    json j = MinimalJson();
    c.edit(j);
    const Status s = LoadError(j);
    EXPECT_EQ(s.code(), c.code) << c.name << ": " << s.ToString();
    for (const std::string& w : c.words) EXPECT_THAT(s.message(), HasSubstr(w)) << c.name;
  }
}

TEST(TokenizerLoad, MergesAsPairsOrStrings) {
  json strings = MinimalJson();
  strings["model"]["vocab"]["ab"] = 256;
  strings["model"]["merges"] = {"a b"};
  json pairs = strings;
  pairs["model"]["merges"] = json::array({json::array({"a", "b"})});
  for (const json& j : {strings, pairs}) {
    auto t = std::move(Tokenizer::FromJson(j.dump(), "t")).value();
    EXPECT_THAT(t->Encode("abc").value(), ElementsAre(256, 'c'));
  }
}

// MinimalJson with added tokens: overlapping special ones, a non-special one, and rstrip /
// lstrip.
std::unique_ptr<Tokenizer> WithAddedTokens() {
  json j = MinimalJson();
  j["added_tokens"] = {{{"id", 300}, {"content", "<x>"}, {"special", true}},
                       {{"id", 301}, {"content", "<x>y"}, {"special", true}},
                       {{"id", 302}, {"content", "zz"}, {"special", false}},
                       {{"id", 303}, {"content", "<s>"}, {"special", true}, {"rstrip", true}},
                       {{"id", 304}, {"content", "<l>"}, {"special", false}, {"lstrip", true}}};
  return std::move(Tokenizer::FromJson(j.dump(), "t")).value();
}

TEST(TokenizerEncode, AddedTokensLongestMatchFirst) {
  auto t = WithAddedTokens();
  EXPECT_THAT(t->Encode("<x>yq<x>q").value(), ElementsAre(301, 'q', 300, 'q'));
  EXPECT_THAT(t->Encode("azzb").value(), ElementsAre('a', 302, 'b'));
  // rstrip / lstrip absorb the whitespace beside the token.
  EXPECT_THAT(t->Encode("<s>  a").value(), ElementsAre(303, 'a'));
  EXPECT_THAT(t->Encode("a  <l>").value(), ElementsAre('a', 304));
  // parse_special = false: the text is ordinary text.
  EXPECT_THAT(t->Encode("<x>", {.parse_special = false}).value(), ElementsAre('<', 'x', '>'));
  // No BOS token in this vocabulary.
  EXPECT_EQ(t->Encode("a", {.add_bos = true}).status().code(), StatusCode::kFailedPrecondition);
  // Special tokens are dropped on request, others kept.
  const std::vector<TokenId> ids = {300, 'a', 302};
  EXPECT_EQ(t->Decode(ids).value(), "<x>azz");
  EXPECT_EQ(t->Decode(ids, {.skip_special_tokens = true}).value(), "azz");
}

TEST(TokenizerEncode, ParseSpecialOffEncodesSpelledTokensAsBpe) {
  // The spellings of BOS, EOS and the chat tokens encode as the ordinary pieces of their
  // text: no added token id, and the bytes come back.
  const Tokenizer& t = Tiny();
  const std::string text =
      "<｜begin▁of▁sentence｜><｜end▁of▁sentence｜><｜User｜>hi<｜Assistant｜><think></think>"
      "<｜DSML｜invoke<｜latest_reminder｜>";
  const std::vector<TokenId> ids = t.Encode(text, {.parse_special = false}).value();
  std::vector<TokenId> pieces;
  for (std::string_view piece : t.pre_tokenizer().Split(text)) {
    t.model().EncodePiece(piece, &pieces);
  }
  EXPECT_EQ(ids, pieces);
  for (TokenId id : ids) EXPECT_FALSE(t.IsSpecial(id)) << id;
  EXPECT_EQ(t.Decode(ids).value(), text);
  EXPECT_EQ(t.Encode(text).value().front(), 0);  // parsing (the default) matches them
}

TEST(TokenizerEncode, SegmentsMatchAddedTokensOnlyWhereParsed) {
  auto t = WithAddedTokens();
  auto enc = [&](std::vector<TextSegment> segments, EncodeOptions options = {}) {
    return t->EncodeSegments(segments, options).value();
  };
  // Special and non-special added tokens are text in a segment without parse_special.
  EXPECT_THAT(enc({{"<x>a", true}, {"<x>zz", false}, {"b<x>", true}}),
              ElementsAre(300, 'a', '<', 'x', '>', 'z', 'z', 'b', 300));
  // A token may span consecutive parsed segments, never one that is not parsed; the longest
  // token that fits is taken instead.
  EXPECT_THAT(enc({{"<x", true}, {">y", true}}), ElementsAre(301));
  EXPECT_THAT(enc({{"<x", true}, {">", false}}), ElementsAre('<', 'x', '>'));
  EXPECT_THAT(enc({{"<x>", true}, {"y", false}}), ElementsAre(300, 'y'));
  // lstrip / rstrip absorb whitespace from the neighbouring segment, as in one text.
  EXPECT_THAT(enc({{"<s>", true}, {"  a", false}}), ElementsAre(303, 'a'));
  EXPECT_THAT(enc({{"a  ", false}, {"<l>", true}}), ElementsAre('a', 304));
  // options.parse_special = false turns matching off everywhere.
  EXPECT_THAT(enc({{"<x>", true}}, {.parse_special = false}), ElementsAre('<', 'x', '>'));
  EXPECT_EQ(t->EncodeSegments({}, {.add_bos = true}).status().code(),
            StatusCode::kFailedPrecondition);
  // Ordinary text is pre-tokenized and merged across segment boundaries: " the and" split
  // mid-word gives the ids of the whole text.
  const std::vector<TextSegment> words = {{" th", true}, {"e an", false}, {"d", true}};
  EXPECT_EQ(Tiny().EncodeSegments(words).value(), Tiny().Encode(" the and").value());
}

TEST(TokenizerEncode, ChatTokensInText) {
  const Tokenizer& t = Tiny();
  std::vector<TokenId> ids =
      t.Encode("<｜begin▁of▁sentence｜><｜User｜>2+2?<｜Assistant｜><think>").value();
  EXPECT_EQ(ids.front(), 0);
  EXPECT_EQ(ids[1], 506);
  EXPECT_EQ(ids[ids.size() - 2], 507);
  EXPECT_EQ(ids.back(), 508);
  // The DSML token sits inside tag text: "<", "｜DSML｜", "invoke".
  ids = t.Encode("<｜DSML｜invoke").value();
  EXPECT_EQ(ids[0], 3 + '<');
  EXPECT_EQ(ids[1], 510);
}

TEST(TokenizerRoundTrip, VariedUnicode) {
  const std::vector<std::string> texts = {
      "Hello, world! The quick brown fox.",
      "int main() {\n  return 0;\n}\n",
      "数学是科学的语言。我爱北京天安门！",
      "ひらがなとカタカナと漢字",
      "한국어 문장입니다.",
      "emoji 😀👍🏽 family 👨‍👩‍👧‍👦 flag 🇯🇵",
      "cafe\xCC\x81 n\xCC\x83 (combining marks) Zürich naïve",
      "עברית וערבית: مرحبا بالعالم",
      "Ελληνικά, Русский, हिन्दी",
      "tabs\tand\r\nnewlines\n\n\n  and   spaces  ",
      "1234567890 3.14159 1e-10",
      "<｜User｜>mixed<｜Assistant｜>special</think>",
      "\xE2\x80\xA8\xE3\x80\x80\xC2\xA0",  // U+2028, U+3000, U+00A0 whitespace
  };
  for (const std::string& text : texts) {
    const std::vector<TokenId> ids = Tiny().Encode(text).value();
    EXPECT_EQ(Tiny().Decode(ids).value(), text);
    EXPECT_EQ(Tiny().DecodeText(ids).value(), text);
  }
}

TEST(TokenizerRoundTrip, InvalidUtf8Bytes) {
  // Ill-formed input still encodes (as byte tokens) and Decode returns the exact bytes;
  // DecodeText replaces each maximal ill-formed subpart with U+FFFD.
  const std::string r(kReplacementChar);
  const std::string text = "ok\xFF\xFE mid\xE4\xB8 end\xC0\xAF\xF0\x9F\x98";
  const std::vector<TokenId> ids = Tiny().Encode(text).value();
  EXPECT_EQ(Tiny().Decode(ids).value(), text);
  EXPECT_EQ(Tiny().DecodeText(ids).value(), "ok" + r + r + " mid" + r + " end" + r + r + r);
  // Byte tokens alone can spell half a character.
  const std::vector<TokenId> half = {3 + 0xE4, 3 + 0xB8};
  EXPECT_EQ(Tiny().Decode(half).value(), "\xE4\xB8");
  EXPECT_EQ(Tiny().DecodeText(half).value(), r);
}

TEST(TokenizerDecode, UnknownIdIsAnError) {
  const std::vector<TokenId> ids = {5, 512};
  Result<std::string> s = Tiny().Decode(ids);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kOutOfRange);
  EXPECT_THAT(s.status().message(), HasSubstr("512"));
  EXPECT_EQ(Tiny().TokenBytes(-1), nullptr);
}

}  // namespace
}  // namespace dsv4::tokenizer
