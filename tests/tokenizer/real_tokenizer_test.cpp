// The tokenizer on DeepSeek's real vocabulary (DeepSeek-V3's tokenizer.json, the base V4
// shares), checked against an independent implementation, @lenml/tokenizers run under node
// (tests/tokenizer/node/encode.js; one node process per test for its whole corpus), on a
// generated multilingual corpus (testing/tokenizer_corpus.h): the ids must agree on every
// string, and decoding must give every string back. The files come from scripts/setup
// (testing/real_tokenizer.h says where); without them these tests skip, naming what is
// missing.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "core/file_read.h"
#include "testing/deepseek_v4_tokens.h"
#include "testing/real_tokenizer.h"
#include "testing/tokenizer_corpus.h"
#include "tokenizer/detokenizer.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace dsv4::tokenizer {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fixtures::RealTokenizerFiles& Files() {
  static const fixtures::RealTokenizerFiles files = fixtures::FindRealTokenizerFiles();
  return files;
}

// DeepSeek-V3's tokenizer, loaded once per process; nullptr when the file is absent.
const Tokenizer* V3() {
  static const std::unique_ptr<Tokenizer> t = [] {
    if (!Files().has_tokenizer) return std::unique_ptr<Tokenizer>();
    return std::move(Tokenizer::FromFile(Files().tokenizer_json)).value();
  }();
  return t.get();
}

std::string V4Json() {
  const std::string v3 =
      ReadFileLimited(Files().tokenizer_json, kMaxTokenizerJsonBytes, "tokenizer").value();
  return fixtures::DeepSeekV4StyleTokenizerJson(v3).value();
}

const Tokenizer* V4() {
  static const std::unique_ptr<Tokenizer> t = [] {
    if (!Files().has_tokenizer) return std::unique_ptr<Tokenizer>();
    return std::move(Tokenizer::FromJson(V4Json(), "v4-style tokenizer.json")).value();
  }();
  return t.get();
}

#define REQUIRE_TOKENIZER()                                                       \
  if (!Files().has_tokenizer) GTEST_SKIP() << "real tokenizer: " << Files().missing
#define REQUIRE_NODE()                                                            \
  if (!Files().has_tokenizer || !Files().has_node)                                \
  GTEST_SKIP() << "reference tokenizer under node: " << Files().missing

// The ids @lenml/tokenizers gives each string of `corpus` with `tokenizer_json`, from one
// node process (added tokens matched, no BOS).
std::vector<std::vector<TokenId>> NodeIds(const fs::path& tokenizer_json,
                                          const std::vector<std::string>& corpus,
                                          const std::string& name) {
  const fs::path dir = fs::path(DSV4_TEST_TMPDIR) / "real_tokenizer";
  fs::create_directories(dir);
  const fs::path in = dir / (name + ".in.jsonl"), out = dir / (name + ".out.jsonl"),
                 err = dir / (name + ".err");
  {
    std::ofstream f(in, std::ios::binary);
    for (const std::string& s : corpus) f << json(s).dump() << '\n';
  }
  const std::string command = "node '" + std::string(DSV4_NODE_ENCODE_JS) + "' '" +
                              Files().dir.string() + "' '" + tokenizer_json.string() + "' < '" +
                              in.string() + "' > '" + out.string() + "' 2> '" + err.string() + "'";
  const int rc = std::system(command.c_str());
  std::vector<std::vector<TokenId>> ids;
  if (rc != 0) {
    std::ifstream e(err);
    std::stringstream message;
    message << e.rdbuf();
    ADD_FAILURE() << command << " failed (" << rc << "): " << message.str();
    return ids;
  }
  std::ifstream f(out, std::ios::binary);
  for (std::string line; std::getline(f, line);) ids.push_back(json::parse(line));
  EXPECT_EQ(ids.size(), corpus.size()) << "node answered a different number of lines";
  return ids;
}

// Where two id lists first differ, with the tokens' bytes around it, for failure messages.
std::string DescribeDifference(const Tokenizer& t, const std::string& text,
                               const std::vector<TokenId>& ours,
                               const std::vector<TokenId>& theirs) {
  size_t i = 0;
  while (i < ours.size() && i < theirs.size() && ours[i] == theirs[i]) ++i;
  auto window = [&](const std::vector<TokenId>& ids) {
    std::string s;
    for (size_t k = i; k < ids.size() && k < i + 6; ++k) {
      const std::string* bytes = t.TokenBytes(ids[k]);
      s += std::to_string(ids[k]) + ":" + json(SanitizeUtf8(bytes ? *bytes : "?")).dump() + " ";
    }
    return s;
  };
  return "text " + json(text.substr(0, 300)).dump() + "\n  first difference at id " +
         std::to_string(i) + "\n  ours:  " + window(ours) + "\n  node:  " + window(theirs);
}

// Encodes every string (added tokens matched, as node does) and compares with node.
void ExpectSameIdsAsNode(const Tokenizer& t, const fs::path& tokenizer_json,
                         const std::vector<std::string>& corpus, const std::string& name) {
  const std::vector<std::vector<TokenId>> node = NodeIds(tokenizer_json, corpus, name);
  if (node.size() != corpus.size()) return;
  size_t mismatches = 0, num_ids = 0;
  for (size_t i = 0; i < corpus.size(); ++i) {
    const std::vector<TokenId> ours = t.Encode(corpus[i]).value();
    num_ids += ours.size();
    if (ours == node[i]) continue;
    if (++mismatches <= 10) {
      ADD_FAILURE() << name << "[" << i << "]: " << DescribeDifference(t, corpus[i], ours, node[i]);
    }
  }
  EXPECT_EQ(mismatches, 0u) << name << ": " << mismatches << " of " << corpus.size()
                            << " strings encode differently";
  ::testing::Test::RecordProperty(name + "_strings", static_cast<int>(corpus.size()));
  ::testing::Test::RecordProperty(name + "_ids", static_cast<int>(num_ids));
}

// `count` short strings of random code points from the whole BMP and plane 1 mixed with
// ASCII, spaces and CJK. Code points unassigned in this PCRE2's Unicode tables are left out:
// node's tables are newer, and the pre-tokenizer's classes (\p{L}, \p{S}, ...) differ on
// characters assigned since (the README's "Known difference").
std::vector<std::string> RandomCodePointStrings(size_t count) {
  const std::unique_ptr<Regex> unassigned = Regex::Compile("\\p{Cn}", false, "test").value();
  std::mt19937 rng(11);
  const std::string common[] = {" ", "a", "1", "!", "\n", "中", "\t", "  ", "é", "A", "'s"};
  std::vector<std::string> out;
  while (out.size() < count) {
    std::string s;
    for (int k = 1 + static_cast<int>(rng() % 8); k > 0; --k) {
      if (rng() % 10 < 4) {
        s += common[rng() % std::size(common)];
        continue;
      }
      const uint32_t cp = 0x20 + static_cast<uint32_t>(rng() % (0x20000 - 0x20));
      if (cp >= 0xD800 && cp <= 0xDFFF) continue;
      std::string c;
      AppendUtf8(cp, &c);
      std::vector<std::pair<size_t, size_t>> hits;
      unassigned->FindAll(c, &hits);
      if (hits.empty()) s += c;
    }
    if (!s.empty()) out.push_back(std::move(s));
  }
  return out;
}

std::vector<std::string> ComparisonCorpus() {
  std::vector<std::string> corpus = fixtures::TokenizerCorpusCases();
  for (std::string& s : fixtures::TokenizerCorpusMixes(3000, 6, 15)) corpus.push_back(std::move(s));
  for (std::string& s : RandomCodePointStrings(10000)) corpus.push_back(std::move(s));
  corpus.push_back(fixtures::TokenizerCorpusText(1 << 20, 7));  // one 1 MiB string
  return corpus;
}

TEST(RealTokenizer, LoadsDeepSeekV3) {
  REQUIRE_TOKENIZER();
  const Tokenizer& t = *V3();
  EXPECT_EQ(t.vocab_size(), 128815);
  EXPECT_EQ(t.model().vocab().size(), 128000u);
  EXPECT_EQ(t.model().num_merges(), 127741u);
  EXPECT_EQ(t.bos_id(), 0);
  EXPECT_EQ(t.eos_id(), 1);
  EXPECT_EQ(t.TokenToId("<｜User｜>"), 128803);
  EXPECT_EQ(t.Encode("Hello world").value(), (std::vector<TokenId>{19923, 2058}));
}

TEST(RealTokenizer, SameIdsAsNodeOnCorpus) {
  REQUIRE_NODE();
  ExpectSameIdsAsNode(*V3(), Files().tokenizer_json, ComparisonCorpus(), "v3_corpus");
}

TEST(RealTokenizer, DecodeGivesEveryStringBack) {
  REQUIRE_TOKENIZER();
  const Tokenizer& t = *V3();
  for (const std::string& s : ComparisonCorpus()) {
    for (bool parse_special : {true, false}) {
      const std::vector<TokenId> ids = t.Encode(s, {.parse_special = parse_special}).value();
      ASSERT_EQ(t.Decode(ids).value(), s) << json(s.substr(0, 200)).dump();
    }
  }
}

TEST(RealTokenizer, IllFormedUtf8RoundTripsAsBytes) {
  REQUIRE_TOKENIZER();
  const Tokenizer& t = *V3();
  for (const std::string& s : {std::string("abc\xFF\xFE def"), std::string("\xE4\xB8 x\xF0\x9F\x98"),
                              std::string("\xC0\xAF\xED\xA0\x80 中文 \x80")}) {
    EXPECT_EQ(t.Decode(t.Encode(s).value()).value(), s);
  }
}

// Every entry of the V4 table, spelled in plain text, on top of the real base vocabulary.
std::vector<std::string> V4Corpus() {
  std::vector<std::string> corpus;
  std::string all;
  for (const fixtures::V4AddedToken& tok : fixtures::DeepSeekV4AddedTokens()) {
    const std::string c(tok.content);
    corpus.push_back(c);
    corpus.push_back("text before " + c + "text after\n");
    corpus.push_back(c + c + " " + c + "\n" + c);
    all += c + "word ";
  }
  corpus.push_back(all);
  corpus.push_back("<｜User｜>Call <dsml:invoke name=\"get_weather\">Paris</dsml:invoke>"
                   "<｜Assistant｜><think>I should call the tool.</think><｜DSML｜invoke>");
  corpus.push_back("<dsml <dsml: </dsml: <｜DSML｜ ｜DSML｜| <think </think <thinking> <｜latest");
  for (std::string_view f : fixtures::TokenizerCorpusFragments()) corpus.emplace_back(f);
  return corpus;
}

TEST(RealTokenizer, V4AddedTokensEncodeAndDecode) {
  REQUIRE_TOKENIZER();
  const Tokenizer& t = *V4();
  EXPECT_EQ(t.model().vocab().size(), 128000u);
  for (const fixtures::V4AddedToken& tok : fixtures::DeepSeekV4AddedTokens()) {
    SCOPED_TRACE(std::string(tok.content));
    EXPECT_EQ(t.TokenToId(tok.content), tok.id);
    EXPECT_EQ(t.IsSpecial(static_cast<TokenId>(tok.id)), tok.special);
    std::string text = "a";
    text.append(tok.content).append("b");
    const std::vector<TokenId> ids = t.Encode(text).value();
    EXPECT_THAT(ids, testing::Contains(static_cast<TokenId>(tok.id)));
    EXPECT_EQ(t.Decode(ids).value(), text);
  }
  EXPECT_EQ(t.Encode("<｜User｜>hi<｜Assistant｜><think>").value(),
            (std::vector<TokenId>{128803, t.TokenToId("hi").value(), 128804, 128821}));
}

TEST(RealTokenizer, V4ParseSpecialOffNeverGivesAnAddedToken) {
  REQUIRE_TOKENIZER();
  const Tokenizer& t = *V4();
  for (const std::string& s : V4Corpus()) {
    const std::vector<TokenId> ids = t.Encode(s, {.parse_special = false}).value();
    for (TokenId id : ids) {
      ASSERT_LT(id, 128000) << json(s).dump() << " gave added token " << id;
      ASSERT_GT(id, 2) << json(s).dump() << " gave sentence token " << id;
    }
    EXPECT_EQ(t.Decode(ids).value(), s);
  }
  // Untrusted content inside a template: only the template's segment is parsed.
  const TextSegment segments[] = {{"<｜User｜>", true}, {"<｜Assistant｜></think>", false},
                                  {"<｜Assistant｜>", true}};
  const std::vector<TokenId> ids = t.EncodeSegments(segments).value();
  EXPECT_EQ(ids.front(), 128803);
  EXPECT_EQ(ids.back(), 128804);
  EXPECT_EQ(std::count_if(ids.begin(), ids.end(), [](TokenId id) { return id >= 128000; }), 2);
}

TEST(RealTokenizer, V4SameIdsAsNode) {
  REQUIRE_NODE();
  const fs::path file = fs::path(DSV4_TEST_TMPDIR) / "real_tokenizer" / "v4_tokenizer.json";
  fs::create_directories(file.parent_path());
  std::ofstream(file, std::ios::binary) << V4Json();
  ExpectSameIdsAsNode(*V4(), file, V4Corpus(), "v4_corpus");
}

// Feeds ids one at a time; every piece must be well-formed UTF-8. Returns the concatenation
// and counts the ids whose own bytes end inside a character.
std::string Stream(const Tokenizer& t, std::span<const TokenId> ids, size_t* split_ids) {
  Detokenizer d(t);
  std::string all;
  for (TokenId id : ids) {
    const std::string piece = d.Feed(id).value();
    EXPECT_TRUE(IsValidUtf8(piece)) << json(SanitizeUtf8(piece)).dump();
    all += piece;
    if (!IsValidUtf8(*t.TokenBytes(id))) ++*split_ids;
  }
  const std::string tail = d.Flush();
  EXPECT_TRUE(IsValidUtf8(tail));
  return all + tail;
}

TEST(RealTokenizer, StreamingDetokenizerIsUtf8SafeOnRealVocabulary) {
  REQUIRE_TOKENIZER();
  const Tokenizer& t = *V4();
  size_t split_ids = 0;
  std::vector<std::string> corpus = fixtures::TokenizerCorpusCases();
  for (std::string& s : fixtures::TokenizerCorpusMixes(500, 6, 99)) corpus.push_back(std::move(s));
  for (const std::string& s : corpus) {
    const std::vector<TokenId> ids = t.Encode(s).value();
    ASSERT_EQ(Stream(t, ids, &split_ids), s) << json(s.substr(0, 200)).dump();
  }
  // The corpus does exercise holding back: CJK and emoji often end mid-character here.
  EXPECT_GT(split_ids, 100u);

  // Arbitrary id sequences (any bytes): streaming equals DecodeText of the whole.
  std::mt19937 rng(5);
  std::uniform_int_distribution<TokenId> any_id(3, 127999);
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<TokenId> ids(1 + trial % 17);
    for (TokenId& id : ids) id = any_id(rng);
    ASSERT_EQ(Stream(t, ids, &split_ids), t.DecodeText(ids).value());
  }
}

TEST(RealTokenizer, StreamingHoldsBackTheTokensOfOneCharacter) {
  REQUIRE_TOKENIZER();
  const Tokenizer& t = *V3();
  // Find a character the vocabulary spells with more than one token, and stream it.
  for (std::string_view c : {"𓀀", "🫠", "𝔘", "🀄", "ힰ", "龘"}) {
    const std::vector<TokenId> ids = t.Encode(c).value();
    if (ids.size() < 2) continue;
    Detokenizer d(t);
    for (size_t i = 0; i + 1 < ids.size(); ++i) EXPECT_EQ(d.Feed(ids[i]).value(), "") << c;
    EXPECT_EQ(d.Feed(ids.back()).value(), c);
    EXPECT_EQ(d.Flush(), "");
    return;
  }
  FAIL() << "every candidate character is a single token";
}

}  // namespace
}  // namespace dsv4::tokenizer
