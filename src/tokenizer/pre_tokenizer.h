// The pre-tokenizer of a Hugging Face tokenizer.json: cuts text into pieces that BPE then
// encodes independently (no token ever spans two pieces). Supported stages, matching
// huggingface/tokenizers' pre_tokenizers module:
//   Sequence   - runs its stages in order, each one re-splitting every piece of the last;
//   Split      - a regex (PCRE2 with UTF and UCP, so \p{L}, \s and friends are Unicode-aware
//                as in Oniguruma, which tokenizers uses) or a literal string, with behavior
//                Isolated, Removed, MergedWithPrevious, MergedWithNext or Contiguous, and
//                optional invert;
//   ByteLevel  - maps bytes to GPT-2's alphabet (done by the BPE step, see byte_level.h);
//                with use_regex it first splits with GPT-2's regex. add_prefix_space must be
//                false (true would edit the text, which no DeepSeek tokenizer asks for).
// Anything else is Unimplemented, naming the stage, so a tokenizer is never silently wrong.
//
// Thread-safe after construction: Split() is const and allocates its own match state.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace dsv4::tokenizer {

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// One compiled PCRE2 pattern (owned).
class Regex {
 public:
  // `pattern` is a PCRE2 pattern, or a literal when `literal` is true. The error names
  // `label`, the pattern and PCRE2's message with the offset.
  static Result<std::unique_ptr<Regex>> Compile(std::string_view pattern, bool literal,
                                                std::string_view label);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Appends the [begin, end) byte ranges of the successive non-overlapping leftmost matches
  // in `text` (which must be valid UTF-8). Empty matches are skipped. Lookarounds see only
  // `text`, as in tokenizers, which runs each split on its own piece.
  void FindAll(std::string_view text, std::vector<std::pair<size_t, size_t>>* matches) const;

  const std::string& pattern() const { return pattern_; }

 private:
  Regex() = default;
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8*
};

class PreTokenizer {
 public:
  // Builds from the "pre_tokenizer" value of tokenizer.json (null means: no splitting).
  // `label` prefixes errors, e.g. "model/tokenizer.json: pre_tokenizer".
  static Result<std::unique_ptr<PreTokenizer>> FromJson(const nlohmann::json& j,
                                                        std::string_view label);
  ~PreTokenizer();

  // Splits valid UTF-8 `text` into pieces (views into `text`, in order, never empty).
  std::vector<std::string_view> Split(std::string_view text) const;

  // True if a ByteLevel stage is present: BPE symbols are then GPT-2 byte characters.
  bool byte_level() const { return byte_level_; }

 private:
  struct Stage {
    std::unique_ptr<Regex> regex;
    SplitBehavior behavior = SplitBehavior::kIsolated;
    bool invert = false;
  };
  PreTokenizer() = default;
  Status AddStage(const nlohmann::json& j, const std::string& label);

  std::vector<Stage> stages_;
  bool byte_level_ = false;
};

// The regexes of DeepSeek-V3's tokenizer.json pre_tokenizer (also DeepSeek-V3.2's and
// DeepSeek-V4's: same tokenizer family), each a Split with behavior Isolated, followed by
// ByteLevel(add_prefix_space=false, use_regex=false). Sources: the "pre_tokenizer" of
// huggingface.co/deepseek-ai/DeepSeek-V3 tokenizer.json; identical to llama.cpp's
// src/llama-vocab.cpp case LLAMA_VOCAB_PRE_TYPE_DEEPSEEK3_LLM ("deepseek-v3"). Used by the
// tiny tokenizer generator (testing/tokenizer_generator.h) and documented in
// docs/chat-format.md.
//   1. digits in groups of up to three;
inline constexpr std::string_view kDeepSeekDigitsRegex = "\\p{N}{1,3}";
//   2. runs of CJK ideographs (U+4E00..U+9FA5), Hiragana (U+3040..U+309F) and Katakana
//      (U+30A0..U+30FF);
inline constexpr std::string_view kDeepSeekCjkRegex = "[\u4E00-\u9FA5\u3040-\u309F\u30A0-\u30FF]+";
//   3. words (an ASCII punctuation mark glued to ASCII letters, or letters/marks with one
//      optional leading non-letter such as a space), punctuation runs with their trailing
//      newlines, newline runs, and other whitespace.
inline constexpr std::string_view kDeepSeekWordRegex =
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+"
    "|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
    "| ?[\\p{P}\\p{S}]+[\r\n]*"
    "|\\s*[\r\n]+"
    "|\\s+(?!\\S)"
    "|\\s+";

// GPT-2's pre-tokenizer regex, used by ByteLevel when use_regex is true (tokenizers'
// pre_tokenizers/byte_level.rs, from openai/gpt-2 src/encoder.py).
inline constexpr std::string_view kGpt2Regex =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

// The "pre_tokenizer" JSON of DeepSeek's tokenizer.json, built from the constants above, its
// keys in the file's order (so a generated tokenizer.json spells it as DeepSeek's does; it
// converts to nlohmann::json for FromJson).
nlohmann::ordered_json DeepSeekPreTokenizerJson();

}  // namespace dsv4::tokenizer
