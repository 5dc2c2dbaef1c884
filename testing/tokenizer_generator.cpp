#include "testing/tokenizer_generator.h"

#include <map>
#include <nlohmann/json.hpp>
#include <utility>

namespace dsv4::fixtures {
namespace {

using nlohmann::ordered_json;

// Written for this project: prose about the engine, some C++ and Python, a short chat and a
// few numbers, so the merges cover common English words, code punctuation and indentation.
constexpr std::string_view kCorpus =
    R"corpus(dsv4.cpp is a small inference engine for DeepSeek-V4, written in C++20.
It reads the official checkpoint, plans how much memory the weights and the KV cache need,
and then generates text, one token at a time, for many requests at once.

The model is a mixture of experts. For every token, a router picks a few experts out of
many, and only those experts run. Attention is compressed: the engine keeps a small cache of
compressed keys and values for the whole context, and a sliding window of recent tokens at
full precision. An indexer chooses which compressed blocks each query should read.

A request comes in over HTTP or from the command line. The tokenizer turns its text into
token ids, the scheduler decides which sequences run in the next step, and the model runner
computes the logits. The sampler picks the next token, and the detokenizer turns the new ids
back into text that is streamed to the client.

Why write another engine? Because reading the whole path in one sitting is the best way to
learn how a large language model is served. Every fast kernel is checked against a plain
reference, and every error names the file, the field, the expected and the actual value.

User: Hello! Can you tell me what the weather is like in Paris today?
Assistant: I do not have live data, but I can show you how to call a weather tool.
User: Please write a function that adds two numbers.
Assistant: Here is a short example in Python and one in C++.

def add(a, b):
    """Return the sum of a and b."""
    return a + b


def mean(values):
    if not values:
        return 0.0
    total = 0
    for value in values:
        total += value
    return total / len(values)


class Counter:
    def __init__(self):
        self.counts = {}

    def add(self, key):
        self.counts[key] = self.counts.get(key, 0) + 1
        return self.counts[key]


#include <cstdint>
#include <string>
#include <vector>

namespace dsv4 {

// Returns the sum of the values; an empty list sums to zero.
int64_t Sum(const std::vector<int64_t>& values) {
  int64_t total = 0;
  for (int64_t v : values) total += v;
  return total;
}

struct Request {
  std::string prompt;
  int max_tokens = 128;
  float temperature = 0.7f;
  bool stream = true;
};

class Scheduler {
 public:
  explicit Scheduler(int num_pages) : num_pages_(num_pages) {}
  bool CanAllocate(int pages) const { return pages <= num_pages_ - used_pages_; }
  void Allocate(int pages) { used_pages_ += pages; }
  void Free(int pages) { used_pages_ -= pages; }

 private:
  int num_pages_ = 0;
  int used_pages_ = 0;
};

}  // namespace dsv4

The numbers matter too: 1, 2, 3, 10, 42, 100, 256, 512, 1024, 2048, 4096, 65536 and 129280.
In 2025 the model had 61 layers; the tiny test model has 4 layers and a vocabulary of 512.
A page holds 256 tokens, so a context of 1000000 tokens needs 3907 pages per layer.

The quick brown fox jumps over the lazy dog. The five boxing wizards jump quickly.
She said, "It's a good day to learn something new." They're ready; we'll see what happens.
)corpus";

// DeepSeek's pre-tokenizer regexes, as in src/tokenizer/pre_tokenizer.h (sources there);
// tests/tokenizer check that both copies agree.
constexpr std::string_view kDigitsRegex = "\\p{N}{1,3}";
constexpr std::string_view kCjkRegex = "[\u4E00-\u9FA5\u3040-\u309F\u30A0-\u30FF]+";
constexpr std::string_view kWordRegex =
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+"
    "|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
    "| ?[\\p{P}\\p{S}]+[\r\n]*"
    "|\\s*[\r\n]+"
    "|\\s+(?!\\S)"
    "|\\s+";

constexpr std::string_view kBos = "<｜begin▁of▁sentence｜>";
constexpr std::string_view kEos = "<｜end▁of▁sentence｜>";
constexpr std::string_view kPad = "<｜▁pad▁｜>";
// The chat-format tokens of DeepSeek-V4's encoding_dsv4.py, given the top ids.
constexpr std::string_view kChatTokens[] = {
    "<｜User｜>", "<｜Assistant｜>", "<think>", "</think>", "｜DSML｜", "<｜latest_reminder｜>"};
constexpr int kNumChatTokens = 6;
constexpr int kFirstByteId = 3;

bool IsLetter(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
// ASCII punctuation and symbols (Unicode P and S).
bool IsPunct(char c) {
  return (c >= '!' && c <= '/') || (c >= ':' && c <= '@') || (c >= '[' && c <= '`') ||
         (c >= '{' && c <= '~');
}
// PCRE2's \s with UCP, restricted to ASCII.
bool IsSpace(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
bool IsNewline(char c) { return c == '\r' || c == '\n'; }

// Length of the stage-3 regex match at s[i] (leftmost-first alternation), or 0.
size_t MatchWordRegex(std::string_view s, size_t i) {
  const size_t n = s.size();
  auto letters_from = [&](size_t j) {
    size_t k = j;
    while (k < n && IsLetter(s[k])) ++k;
    return k - j;
  };
  const char c = s[i];
  // [!"#...~][A-Za-z]+
  if (IsPunct(c) && letters_from(i + 1) > 0) return 1 + letters_from(i + 1);
  // [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+
  if (!IsNewline(c) && !IsLetter(c) && !IsPunct(c) && letters_from(i + 1) > 0) {
    return 1 + letters_from(i + 1);
  }
  if (IsLetter(c)) return letters_from(i);
  //  ?[\p{P}\p{S}]+[\r\n]*
  size_t j = i + (c == ' ' && i + 1 < n && IsPunct(s[i + 1]) ? 1 : 0);
  if (IsPunct(s[j])) {
    while (j < n && IsPunct(s[j])) ++j;
    while (j < n && IsNewline(s[j])) ++j;
    return j - i;
  }
  if (!IsSpace(c)) return 0;
  size_t end = i;  // the whitespace run is [i, end)
  while (end < n && IsSpace(s[end])) ++end;
  // \s*[\r\n]+ : up to the last newline of the run.
  for (size_t k = end; k > i; --k) {
    if (IsNewline(s[k - 1])) return k - i;
  }
  // \s+(?!\S) : the run, less its last character when a non-space follows.
  if (end == n) return end - i;
  if (end - i >= 2) return end - i - 1;
  return end - i;  // \s+
}

// Splits `piece` with MatchWordRegex, keeping unmatched stretches as pieces (Isolated).
void SplitWords(std::string_view piece, std::vector<std::string>* out) {
  size_t gap = 0, i = 0;
  while (i < piece.size()) {
    const size_t len = MatchWordRegex(piece, i);
    if (len == 0) {
      ++i;
      continue;
    }
    if (i > gap) out->emplace_back(piece.substr(gap, i - gap));
    out->emplace_back(piece.substr(i, len));
    i += len;
    gap = i;
  }
  if (gap < piece.size()) out->emplace_back(piece.substr(gap));
}

// GPT-2's byte alphabet (see src/tokenizer/byte_level.h): the character byte `b` is written as.
std::string ByteChar(uint8_t b) {
  const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
  uint32_t cp = b;
  if (!printable) {
    cp = 256;
    for (int x = 0; x < b; ++x) {
      if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE)) ++cp;
    }
  }
  std::string out;
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return out;
}

struct Trained {
  std::vector<std::string> tokens;  // byte-level text of ids kFirstByteId.., in id order
  std::vector<std::pair<std::string, std::string>> merges;
};

// Classic BPE training: repeatedly merge the most frequent adjacent pair (ties: the pair
// whose left then right text sorts first), stopping at `max_tokens` or when no pair occurs
// twice.
Trained TrainBpe(std::string_view corpus, size_t max_tokens) {
  Trained t;
  for (int b = 0; b < 256; ++b) t.tokens.push_back(ByteChar(static_cast<uint8_t>(b)));
  std::map<std::string, int> text_to_index;
  for (size_t i = 0; i < t.tokens.size(); ++i) text_to_index[t.tokens[i]] = static_cast<int>(i);

  std::map<std::string, int64_t> word_counts;
  for (const std::string& w : SplitAsciiForTraining(corpus)) ++word_counts[w];
  std::vector<std::pair<std::vector<int>, int64_t>> words;
  for (const auto& [w, count] : word_counts) {
    std::vector<int> symbols;
    for (char c : w) symbols.push_back(static_cast<uint8_t>(c));
    words.emplace_back(std::move(symbols), count);
  }

  while (t.tokens.size() < max_tokens) {
    std::map<std::pair<int, int>, int64_t> pair_counts;
    for (const auto& [symbols, count] : words) {
      for (size_t i = 0; i + 1 < symbols.size(); ++i)
        pair_counts[{symbols[i], symbols[i + 1]}] += count;
    }
    const auto key = [&](const std::pair<int, int>& p) {
      return std::make_pair(t.tokens[p.first], t.tokens[p.second]);
    };
    const std::pair<int, int>* best = nullptr;
    int64_t best_count = 0;
    for (const auto& [pair, count] : pair_counts) {
      if (count < 2) continue;  // a merge must be seen at least twice
      if (best == nullptr || count > best_count ||
          (count == best_count && key(pair) < key(*best))) {
        best = &pair;
        best_count = count;
      }
    }
    if (best == nullptr) break;
    const auto [left, right] = *best;
    const std::string joined = t.tokens[left] + t.tokens[right];
    t.merges.emplace_back(t.tokens[left], t.tokens[right]);
    int merged;
    if (auto it = text_to_index.find(joined); it != text_to_index.end()) {
      merged = it->second;  // two pairs can spell the same token; it keeps one id
    } else {
      merged = static_cast<int>(t.tokens.size());
      t.tokens.push_back(joined);
      text_to_index[joined] = merged;
    }
    for (auto& [symbols, count] : words) {
      std::vector<int> next;
      next.reserve(symbols.size());
      for (size_t i = 0; i < symbols.size(); ++i) {
        if (i + 1 < symbols.size() && symbols[i] == left && symbols[i + 1] == right) {
          next.push_back(merged);
          ++i;
        } else {
          next.push_back(symbols[i]);
        }
      }
      symbols.swap(next);
    }
  }
  return t;
}

ordered_json AddedToken(int64_t id, std::string_view content) {
  return ordered_json{{"id", id},
                      {"content", std::string(content)},
                      {"single_word", false},
                      {"lstrip", false},
                      {"rstrip", false},
                      {"normalized", false},
                      {"special", true}};
}

ordered_json PreTokenizerJson() {
  auto split = [](std::string_view regex) {
    return ordered_json{{"type", "Split"},
                        {"pattern", {{"Regex", std::string(regex)}}},
                        {"behavior", "Isolated"},
                        {"invert", false}};
  };
  return ordered_json{{"type", "Sequence"},
                      {"pretokenizers",
                       {split(kDigitsRegex), split(kCjkRegex), split(kWordRegex),
                        ordered_json{{"type", "ByteLevel"},
                                     {"add_prefix_space", false},
                                     {"trim_offsets", true},
                                     {"use_regex", false}}}}};
}

}  // namespace

std::string_view TinyTokenizerCorpus() { return kCorpus; }

std::vector<std::string> SplitAsciiForTraining(std::string_view text) {
  // Stage 1, \p{N}{1,3}: digit runs in groups of up to three, isolated from the rest. Stage 2
  // (CJK runs) never matches ASCII. Stage 3 splits each remaining piece on its own.
  std::vector<std::string> out;
  size_t gap = 0, i = 0;
  while (i < text.size()) {
    if (!IsDigit(text[i])) {
      ++i;
      continue;
    }
    if (i > gap) SplitWords(text.substr(gap, i - gap), &out);
    size_t j = i;
    while (j < text.size() && j - i < 3 && IsDigit(text[j])) ++j;
    out.emplace_back(text.substr(i, j - i));
    i = gap = j;
  }
  if (gap < text.size()) SplitWords(text.substr(gap), &out);
  return out;
}

Result<std::string> GenerateTinyTokenizerJson(int64_t vocab_size) {
  if (vocab_size < kTinyTokenizerMinVocab) {
    return Status::InvalidArgument(
        "tokenizer: vocab_size must be at least " + std::to_string(kTinyTokenizerMinVocab) +
        " (3 sentence tokens, 256 bytes, 6 chat tokens), got " + std::to_string(vocab_size));
  }
  const int64_t first_chat_id = vocab_size - kNumChatTokens;
  const Trained trained = TrainBpe(kCorpus, static_cast<size_t>(first_chat_id - kFirstByteId));

  ordered_json added = ordered_json::array();
  added.push_back(AddedToken(0, kBos));
  added.push_back(AddedToken(1, kEos));
  added.push_back(AddedToken(2, kPad));
  for (int i = 0; i < kNumChatTokens; ++i)
    added.push_back(AddedToken(first_chat_id + i, kChatTokens[i]));

  // Like DeepSeek's file, the vocabulary also lists the three sentence tokens.
  ordered_json vocab = ordered_json::object();
  vocab[std::string(kBos)] = 0;
  vocab[std::string(kEos)] = 1;
  vocab[std::string(kPad)] = 2;
  for (size_t i = 0; i < trained.tokens.size(); ++i) {
    vocab[trained.tokens[i]] = static_cast<int64_t>(kFirstByteId + i);
  }
  ordered_json merges = ordered_json::array();
  for (const auto& [left, right] : trained.merges) merges.push_back(left + " " + right);

  const ordered_json byte_level = {{"type", "ByteLevel"},
                                   {"add_prefix_space", true},
                                   {"trim_offsets", false},
                                   {"use_regex", true}};
  ordered_json j = {{"version", "1.0"},
                    {"truncation", nullptr},
                    {"padding", nullptr},
                    {"added_tokens", added},
                    {"normalizer", {{"type", "Sequence"}, {"normalizers", ordered_json::array()}}},
                    {"pre_tokenizer", PreTokenizerJson()},
                    {"post_processor", byte_level},
                    {"decoder", byte_level},
                    {"model",
                     {{"type", "BPE"},
                      {"dropout", nullptr},
                      {"unk_token", nullptr},
                      {"continuing_subword_prefix", nullptr},
                      {"end_of_word_suffix", nullptr},
                      {"fuse_unk", false},
                      {"byte_fallback", false},
                      {"vocab", vocab},
                      {"merges", merges}}}};
  return j.dump(1) + "\n";
}

}  // namespace dsv4::fixtures
