#include "testing/tokenizer_generator.h"

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "core/check.h"
#include "testing/deepseek_v4_tokens.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/pre_tokenizer.h"

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

constexpr std::string_view kBos = "<｜begin▁of▁sentence｜>";
constexpr std::string_view kEos = "<｜end▁of▁sentence｜>";
constexpr std::string_view kPad = "<｜▁pad▁｜>";
// The chat-format tokens of DeepSeek-V4's encoding_dsv4.py, given the top ids in the order
// of their real ids.
std::vector<std::string_view> ChatTokens() {
  std::vector<std::string_view> chat;
  for (const V4AddedToken& t : DeepSeekV4AddedTokens()) {
    if (t.chat) chat.push_back(t.content);
  }
  return chat;
}
constexpr int kNumChatTokens = 6;
constexpr int kFirstByteId = 3;

struct Trained {
  std::vector<std::string> tokens;  // byte-level text of ids kFirstByteId.., in id order
  std::vector<std::pair<std::string, std::string>> merges;
};

// Classic BPE training on the pre-tokenized `pieces`: repeatedly merge the most frequent
// adjacent pair (ties: the pair whose left then right text sorts first), stopping at
// `max_tokens` or when no pair occurs twice.
Trained TrainBpe(const std::vector<std::string_view>& pieces, size_t max_tokens) {
  Trained t;
  const tokenizer::ByteLevelMap& bytes = tokenizer::ByteLevelMap::Get();
  for (int b = 0; b < 256; ++b) t.tokens.push_back(bytes.Char(static_cast<uint8_t>(b)));
  std::map<std::string, int> text_to_index;
  for (size_t i = 0; i < t.tokens.size(); ++i) text_to_index[t.tokens[i]] = static_cast<int>(i);

  std::map<std::string, int64_t> word_counts;
  for (std::string_view w : pieces) ++word_counts[std::string(w)];
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

}  // namespace

std::string_view TinyTokenizerCorpus() { return kCorpus; }

Result<std::string> GenerateTinyTokenizerJson(int64_t vocab_size) {
  if (vocab_size < kTinyTokenizerMinVocab) {
    return Status::InvalidArgument(
        "tokenizer: vocab_size must be at least " + std::to_string(kTinyTokenizerMinVocab) +
        " (3 sentence tokens, 256 bytes, 6 chat tokens), got " + std::to_string(vocab_size));
  }
  const int64_t first_chat_id = vocab_size - kNumChatTokens;
  // The merges are learned on the pieces DeepSeek's pre-tokenizer cuts the corpus into.
  DSV4_ASSIGN_OR_RETURN(std::unique_ptr<tokenizer::PreTokenizer> pre_tokenizer,
                        tokenizer::PreTokenizer::FromJson(tokenizer::DeepSeekPreTokenizerJson(),
                                                          "tiny tokenizer: pre_tokenizer"));
  const Trained trained = TrainBpe(pre_tokenizer->Split(kCorpus),
                                   static_cast<size_t>(first_chat_id - kFirstByteId));

  ordered_json added = ordered_json::array();
  added.push_back(AddedToken(0, kBos));
  added.push_back(AddedToken(1, kEos));
  added.push_back(AddedToken(2, kPad));
  const std::vector<std::string_view> chat_tokens = ChatTokens();
  DSV4_CHECK(chat_tokens.size() == kNumChatTokens);
  for (int i = 0; i < kNumChatTokens; ++i)
    added.push_back(AddedToken(first_chat_id + i, chat_tokens[i]));

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
                    {"pre_tokenizer", tokenizer::DeepSeekPreTokenizerJson()},
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
