// Byte-level BPE: the "model" of a Hugging Face tokenizer.json whose type is "BPE". A piece
// of text (one pre-tokenizer piece) becomes its bytes, each byte the token of its GPT-2
// character, and then adjacent tokens merge, lowest merge rank first (leftmost first among
// equal ranks), until no listed merge applies - the algorithm of tokenizers'
// models/bpe/word.rs (Word::merge_all), which gives the same result as GPT-2's encoder.py.
//
// Thread-safe after construction (EncodePiece is const and keeps no cache).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"

namespace dsv4::tokenizer {

using TokenId = int32_t;

class BpeModel {
 public:
  // Builds from the "model" value of tokenizer.json: "vocab" {token: id}, "merges" as
  // "left right" strings or [left, right] pairs, optional "ignore_merges" and "unk_token".
  // Errors name `label` and the offending field, entry and value.
  static Result<std::unique_ptr<BpeModel>> FromJson(const nlohmann::json& model,
                                                    const std::string& label);

  // Appends the tokens of one pre-tokenizer piece, given as raw bytes. A byte whose
  // character is not in the vocabulary becomes unk_token when there is one and is dropped
  // otherwise (tokenizers does the same); byte-level vocabularies hold all 256.
  void EncodePiece(std::string_view bytes, std::vector<TokenId>* out) const;

  // The vocabulary in GPT-2's alphabet: token text -> id.
  const std::unordered_map<std::string, TokenId>& vocab() const { return vocab_; }
  size_t num_merges() const { return merges_.size(); }

 private:
  struct Merge {
    int32_t rank;
    TokenId merged;
  };
  static uint64_t PairKey(TokenId a, TokenId b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  Status AddMerge(std::string_view left, std::string_view right, size_t rank,
                  const std::string& label);

  std::unordered_map<std::string, TokenId> vocab_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::array<TokenId, 256> byte_token_{};  // -1 when the byte's character is not in vocab_
  TokenId unk_ = -1;
  bool ignore_merges_ = false;
};

}  // namespace dsv4::tokenizer
