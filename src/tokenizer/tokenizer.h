// Text <-> token ids for a Hugging Face tokenizer.json with a byte-level BPE model, the
// format DeepSeek ships (DeepSeek-V3, V3.2 and V4 share one tokenizer family).
//
// Encode: added tokens (those of "added_tokens", special or not) are matched first, leftmost
// and longest first, special ones before the others as tokenizers does; each stretch of text
// between them goes through the pre-tokenizer (pre_tokenizer.h) and byte-level BPE (bpe.h).
// Whether added tokens spelled in the text are matched is the caller's choice
// (EncodeOptions::parse_special, TextSegment::parse_special): text a client wrote as a whole
// prompt may spell control tokens; text a client put inside a template (chat content) must
// not (chat_format.h EncodeChatPrompt).
// Decode: each id's bytes, concatenated; byte-level tokens may end inside a UTF-8 character,
// so Decode returns raw bytes (see DecodeText and detokenizer.h for text).
//
// A Tokenizer is immutable after loading and safe to share between threads.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "tokenizer/bpe.h"
#include "tokenizer/pre_tokenizer.h"

namespace dsv4::tokenizer {

// DeepSeek's sentence markers (tokenizer.json added_tokens ids 0 and 1 in every DeepSeek
// release; the model config's bos_token_id / eos_token_id).
inline constexpr std::string_view kBosToken = "<｜begin▁of▁sentence｜>";
inline constexpr std::string_view kEosToken = "<｜end▁of▁sentence｜>";

struct AddedToken {
  TokenId id = 0;
  std::string content;
  bool special = false;  // skipped by DecodeOptions::skip_special_tokens
  bool lstrip = false;   // absorbs the whitespace before it when matched
  bool rstrip = false;   // absorbs the whitespace after it when matched
};

struct EncodeOptions {
  bool add_bos = false;  // prepend the BOS token (FailedPrecondition if there is none)
  // Match added tokens (special or not) in the text, as tokenizers, vLLM and llama.cpp do
  // for a raw prompt. False encodes their spelling as ordinary BPE pieces, so the text can
  // never produce a control token id (for text a client supplied inside a template).
  bool parse_special = true;
};

// A piece of text for Tokenizer::EncodeSegments and whether added tokens spelled in it may
// be matched. The text must outlive the call.
struct TextSegment {
  std::string_view text;
  bool parse_special = true;
};

struct DecodeOptions {
  bool skip_special_tokens = false;
};

class Tokenizer {
 public:
  // Parses tokenizer.json text. `source` names it in errors ("DIR/tokenizer.json"). DataLoss
  // for text longer than kMaxTokenizerJsonBytes (64 MiB; DeepSeek's is ~8 MB), nested deeper
  // than kDefaultMaxJsonDepth (checked before the parser sees it), not valid JSON or not a
  // byte-level BPE tokenizer.
  static Result<std::unique_ptr<Tokenizer>> FromJson(std::string_view json_text,
                                                     std::string_view source);
  // Reads (ReadFileLimited: NotFound, IoError, InvalidArgument past kMaxTokenizerJsonBytes,
  // naming the path) and parses a tokenizer.json file.
  static Result<std::unique_ptr<Tokenizer>> FromFile(const std::filesystem::path& file);

  Result<std::vector<TokenId>> Encode(std::string_view text,
                                      const EncodeOptions& options = {}) const;
  // Encodes the concatenation of `segments` as one text, except that an added token is
  // matched only where it lies wholly inside a run of consecutive segments with
  // parse_special (and options.parse_special is true). The ordinary text between matched
  // tokens is pre-tokenized and BPE-merged as one stretch across segment boundaries, so when
  // no segment without parse_special spells an added token (and none straddles a boundary
  // into one) the ids equal Encode(concatenation, options). FailedPrecondition as Encode.
  Result<std::vector<TokenId>> EncodeSegments(std::span<const TextSegment> segments,
                                              const EncodeOptions& options = {}) const;

  // The bytes of `ids`, concatenated. OutOfRange names an id that is not a token.
  Result<std::string> Decode(std::span<const TokenId> ids, const DecodeOptions& options = {}) const;
  // Decode, then each ill-formed UTF-8 sequence replaced with U+FFFD (utf8.h SanitizeUtf8),
  // as tokenizers' ByteLevel decoder does (String::from_utf8_lossy).
  Result<std::string> DecodeText(std::span<const TokenId> ids,
                                 const DecodeOptions& options = {}) const;

  // The bytes of one token, or nullptr if `id` is not a token. Valid for the Tokenizer's life.
  const std::string* TokenBytes(TokenId id) const;
  bool IsSpecial(TokenId id) const;
  // The id of a vocabulary entry (in GPT-2's alphabet, e.g. "Ġthe") or an added token's
  // content.
  std::optional<TokenId> TokenToId(std::string_view token) const;

  // One more than the largest id (ids may have gaps).
  int32_t vocab_size() const { return static_cast<int32_t>(tokens_.size()); }
  std::optional<TokenId> bos_id() const { return bos_; }
  std::optional<TokenId> eos_id() const { return eos_; }
  const std::vector<AddedToken>& added_tokens() const { return added_; }
  const PreTokenizer& pre_tokenizer() const { return *pre_; }
  const BpeModel& model() const { return *bpe_; }

 private:
  struct TokenInfo {
    std::string bytes;
    bool present = false;
    bool special = false;
  };
  Tokenizer() = default;
  Status Init(const nlohmann::json& j, const std::string& source);
  Status InitAddedTokens(const nlohmann::json& j, const std::string& source);
  // Appends the tokens of text that contains no added token.
  void EncodeOrdinary(std::string_view text, std::vector<TokenId>* out) const;
  // Byte range [begin, end) of a text.
  struct ByteRange {
    size_t begin = 0, end = 0;
  };
  // Encode and EncodeSegments: `text` with added tokens matched only inside `parse` (sorted,
  // disjoint, non-adjacent ranges of text).
  Result<std::vector<TokenId>> EncodeRanges(std::string_view text,
                                            std::span<const ByteRange> parse,
                                            bool add_bos) const;
  // Added tokens indexed for the scan: most bytes of a text start no token (`starts`), and a
  // position that may start one looks up its text at each length a token with the same first
  // two bytes has (DeepSeek's ~800 "<｜...｜>" tokens have a dozen lengths).
  struct AddedSet {
    std::array<bool, 256> starts{};                    // some token starts with this byte
    std::array<const AddedToken*, 256> single_byte{};  // the one-byte token of that byte
    // Tokens of two or more bytes: the distinct lengths by first two bytes, longest first.
    std::unordered_map<uint16_t, std::vector<size_t>> lengths;
    std::unordered_map<std::string_view, const AddedToken*> by_content;  // views of added_
    bool empty = true;
    void Add(const AddedToken* token);  // `token` must outlive the set
    // The longest token that starts at text[i] and ends by `end`, or nullptr.
    const AddedToken* Match(std::string_view text, size_t i, size_t end) const;
  };
  // Splits text[gap.begin, gap.end) at the added tokens of `candidates` that lie inside one
  // of `parse` (leftmost, then longest), encoding the ranges between them with `next`.
  template <typename Next>
  void SplitAtAdded(std::string_view text, ByteRange gap, std::span<const ByteRange> parse,
                    const AddedSet& candidates, Next&& next, std::vector<TokenId>* out) const;

  std::unique_ptr<PreTokenizer> pre_;
  std::unique_ptr<BpeModel> bpe_;
  std::vector<AddedToken> added_;
  AddedSet special_added_;
  AddedSet plain_added_;
  std::unordered_map<std::string, TokenId> added_by_content_;
  std::vector<TokenInfo> tokens_;  // indexed by id
  std::optional<TokenId> bos_, eos_;
};

// Loads DIR/tokenizer.json. NotFound "tokenizer.json not found in DIR" when it is missing.
Result<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::filesystem::path& dir);

}  // namespace dsv4::tokenizer
