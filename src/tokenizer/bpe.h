// Byte-level BPE: the "model" of a Hugging Face tokenizer.json whose type is "BPE". A piece
// of text (one pre-tokenizer piece) becomes its bytes, each byte the token of its GPT-2
// character, and then adjacent tokens merge, lowest merge rank first (leftmost first among
// equal ranks), until no listed merge applies - the algorithm of tokenizers'
// models/bpe/word.rs (Word::merge_all), which gives the same result as GPT-2's encoder.py.
//
// Speed: merges sit in an open-addressing table keyed by the pair of ids; a piece of up to
// kShortPiece symbols merges by scanning an array of pair ranks (no heap, no allocation),
// longer pieces through a priority queue as word.rs does. Both pick the lowest (rank,
// position) each step, so they give the same tokens.
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
  size_t num_merges() const { return num_merges_; }

  // Pieces of at most this many bytes merge without the priority queue.
  static constexpr int kShortPiece = 64;

 private:
  struct Merge {
    int32_t rank;  // position in "merges"; lower merges first
    TokenId merged;
  };
  static uint64_t PairKey(TokenId a, TokenId b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  // Open addressing with linear probing; a power-of-two number of slots, at most half full.
  class MergeTable {
   public:
    void Reserve(size_t num_merges);
    // Adds the merge unless the pair is already there (the first listing wins, as in
    // tokenizers). Returns false if it was there.
    bool Insert(uint64_t key, Merge merge);
    // The merge of pair `key`, or nullptr.
    const Merge* Find(uint64_t key) const {
      for (size_t i = Slot(key);; i = (i + 1) & mask_) {
        const Entry& e = slots_[i];
        if (e.key == key) return &e.merge;
        if (e.key == kEmptyKey) return nullptr;
      }
    }

   private:
    // No real pair has both ids 0xFFFFFFFF (ids are non-negative int32).
    static constexpr uint64_t kEmptyKey = ~uint64_t{0};
    struct Entry {
      uint64_t key = kEmptyKey;
      Merge merge{};
    };
    size_t Slot(uint64_t key) const {
      return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> shift_);
    }
    std::vector<Entry> slots_ = std::vector<Entry>(1);
    size_t mask_ = 0;
    int shift_ = 63;
    size_t size_ = 0;
  };
  Status AddMerge(std::string_view left, std::string_view right, size_t rank,
                  const std::string& label);
  // The merge loops (see the comment at the top). `ids` holds the piece's byte tokens and is
  // rewritten in place to its merged tokens.
  void MergeShort(std::vector<TokenId>* ids, size_t first) const;
  void MergeLong(std::vector<TokenId>* ids, size_t first) const;

  std::unordered_map<std::string, TokenId> vocab_;
  MergeTable merges_;
  size_t num_merges_ = 0;
  std::array<TokenId, 256> byte_token_{};  // -1 when the byte's character is not in vocab_
  TokenId unk_ = -1;
  bool ignore_merges_ = false;
};

}  // namespace dsv4::tokenizer
