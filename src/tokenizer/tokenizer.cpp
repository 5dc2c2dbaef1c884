#include "tokenizer/tokenizer.h"

#include <algorithm>

#include "core/file_read.h"
#include "core/json_nesting.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/utf8.h"

namespace dsv4::tokenizer {
namespace {

using nlohmann::json;

// Unicode White_Space, which Rust's char::is_whitespace (used by tokenizers for lstrip and
// rstrip) tests.
bool IsWhitespace(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

// Length of the whitespace character starting at text[pos], or 0.
size_t WhitespaceAt(std::string_view text, size_t pos) {
  if (pos >= text.size() || ScanUtf8(text.substr(pos)).step != Utf8Step::kValid) return 0;
  size_t len = 0;
  const uint32_t cp = DecodeUtf8(text.substr(pos), &len);
  return IsWhitespace(cp) ? len : 0;
}

// Length of the whitespace character ending at text[end - 1], or 0.
size_t WhitespaceBefore(std::string_view text, size_t end) {
  size_t begin = end;
  while (begin > 0 && end - begin < 4) {
    --begin;
    if ((static_cast<uint8_t>(text[begin]) & 0xC0) != 0x80) break;  // reached a lead byte
  }
  const size_t len = WhitespaceAt(text, begin);
  return begin + len == end ? len : 0;
}

bool JsonFlag(const json& j, const char* key) {
  return j.contains(key) && j.at(key).is_boolean() && j.at(key).get<bool>();
}

// tokenizers' normalizers change the text before matching and BPE; none of DeepSeek's
// tokenizers uses one (an empty Sequence), and other kinds are refused, not ignored.
Status CheckNormalizer(const json& j, const std::string& source) {
  if (!j.contains("normalizer") || j.at("normalizer").is_null()) return Status::Ok();
  const json& n = j.at("normalizer");
  const std::string type = n.is_object() ? n.value("type", std::string()) : std::string();
  if (type == "Sequence" && n.contains("normalizers") && n.at("normalizers").is_array() &&
      n.at("normalizers").empty()) {
    return Status::Ok();
  }
  return Status::Unimplemented(source + ": normalizer: expected null or an empty Sequence, got " +
                               n.dump());
}

Status CheckDecoder(const json& j, const std::string& source) {
  if (!j.contains("decoder") || j.at("decoder").is_null()) return Status::Ok();
  const json& d = j.at("decoder");
  if (d.is_object() && d.value("type", std::string()) == "ByteLevel") return Status::Ok();
  return Status::Unimplemented(source + ": decoder: expected null or ByteLevel, got " + d.dump());
}

}  // namespace

Status Tokenizer::InitAddedTokens(const json& j, const std::string& source) {
  if (!j.contains("added_tokens") || j.at("added_tokens").is_null()) return Status::Ok();
  const json& list = j.at("added_tokens");
  if (!list.is_array()) {
    return Status::InvalidArgument(source + ": added_tokens: expected a list, got " +
                                   list.dump().substr(0, 80));
  }
  for (size_t i = 0; i < list.size(); ++i) {
    const json& e = list[i];
    const std::string where = source + ": added_tokens[" + std::to_string(i) + "]";
    if (!e.is_object() || !e.contains("id") || !e.at("id").is_number_integer() ||
        e.at("id").get<int64_t>() < 0 || e.at("id").get<int64_t>() > INT32_MAX) {
      return Status::InvalidArgument(
          where + ".id: expected a non-negative integer, got " +
          (e.is_object() && e.contains("id") ? e.at("id").dump() : std::string("nothing")));
    }
    if (!e.contains("content") || !e.at("content").is_string() ||
        e.at("content").get<std::string>().empty()) {
      return Status::InvalidArgument(
          where + ".content: expected a non-empty string, got " +
          (e.contains("content") ? e.at("content").dump() : std::string("nothing")));
    }
    if (JsonFlag(e, "single_word")) {
      return Status::Unimplemented(where + ".single_word: expected false, got true");
    }
    AddedToken t;
    t.id = static_cast<TokenId>(e.at("id").get<int64_t>());
    t.content = e.at("content").get<std::string>();
    t.special = JsonFlag(e, "special");
    t.lstrip = JsonFlag(e, "lstrip");
    t.rstrip = JsonFlag(e, "rstrip");
    added_.push_back(std::move(t));
  }
  return Status::Ok();
}

Status Tokenizer::Init(const json& j, const std::string& source) {
  if (!j.is_object()) return Status::InvalidArgument(source + ": expected a JSON object");
  DSV4_RETURN_IF_ERROR(CheckNormalizer(j, source));
  DSV4_RETURN_IF_ERROR(CheckDecoder(j, source));

  const json null_json;
  DSV4_ASSIGN_OR_RETURN(
      pre_, PreTokenizer::FromJson(j.contains("pre_tokenizer") ? j.at("pre_tokenizer") : null_json,
                                   source + ": pre_tokenizer"));
  if (!pre_->byte_level()) {
    return Status::Unimplemented(source + ": pre_tokenizer: expected a ByteLevel stage (only " +
                                 "byte-level BPE tokenizers are supported)");
  }

  if (!j.contains("model") || !j.at("model").is_object()) {
    return Status::InvalidArgument(source + ": missing field 'model' (expected an object)");
  }
  const json& model = j.at("model");
  const std::string type = model.value("type", std::string("BPE"));
  if (type != "BPE") {
    return Status::Unimplemented(source + ": model.type: expected BPE, got '" + type + "'");
  }
  DSV4_ASSIGN_OR_RETURN(bpe_, BpeModel::FromJson(model, source + ": model"));
  DSV4_RETURN_IF_ERROR(InitAddedTokens(j, source));

  // Per-id bytes: vocabulary entries in GPT-2's alphabet, then added tokens' raw content.
  TokenId max_id = -1;
  for (const auto& [text, id] : bpe_->vocab()) max_id = std::max(max_id, id);
  for (const AddedToken& t : added_) max_id = std::max(max_id, t.id);
  tokens_.resize(static_cast<size_t>(max_id) + 1);
  const ByteLevelMap& map = ByteLevelMap::Get();
  for (const auto& [text, id] : bpe_->vocab()) {
    tokens_[id].bytes = map.Decode(text);
    tokens_[id].present = true;
  }
  for (const AddedToken& t : added_) {
    tokens_[t.id] = TokenInfo{t.content, true, t.special};
    added_by_content_[t.content] = t.id;
  }
  for (const AddedToken& t : added_) (t.special ? special_added_ : plain_added_).Add(&t);
  for (AddedSet* set : {&special_added_, &plain_added_}) {
    for (auto& [pair, list] : set->lengths) std::sort(list.rbegin(), list.rend());
  }
  bos_ = TokenToId(kBosToken);
  eos_ = TokenToId(kEosToken);
  return Status::Ok();
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(std::string_view json_text,
                                                       std::string_view source) {
  if (json_text.size() > kMaxTokenizerJsonBytes) {
    return Status::DataLoss(std::string(source) + ": " + std::to_string(json_text.size()) +
                            " bytes, more than the limit of " +
                            std::to_string(kMaxTokenizerJsonBytes) + " bytes");
  }
  if (Status s = CheckJsonNesting(json_text, kDefaultMaxJsonDepth, source); !s.ok()) {
    return Status::DataLoss(s.message());
  }
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {
    return Status::DataLoss(std::string(source) + ": not valid JSON: " + e.what());
  }
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  DSV4_RETURN_IF_ERROR(t->Init(j, std::string(source)));
  return t;
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::FromFile(const std::filesystem::path& file) {
  DSV4_ASSIGN_OR_RETURN(const std::string text,
                        ReadFileLimited(file, kMaxTokenizerJsonBytes, "tokenizer file"));
  return FromJson(text, file.string());
}

void Tokenizer::AddedSet::Add(const AddedToken* token) {
  const std::string& c = token->content;
  const auto first = static_cast<uint8_t>(c[0]);
  starts[first] = true;
  empty = false;
  if (c.size() == 1) {
    if (single_byte[first] == nullptr) single_byte[first] = token;  // the first listed wins
    return;
  }
  if (!by_content.emplace(c, token).second) return;  // the first listed wins
  std::vector<size_t>& list = lengths[static_cast<uint16_t>(first << 8 | static_cast<uint8_t>(c[1]))];
  if (std::find(list.begin(), list.end(), c.size()) == list.end()) list.push_back(c.size());
}

const AddedToken* Tokenizer::AddedSet::Match(std::string_view text, size_t i, size_t end) const {
  const auto first = static_cast<uint8_t>(text[i]);
  if (!starts[first]) return nullptr;
  if (i + 1 < end) {
    auto list = lengths.find(static_cast<uint16_t>(first << 8 | static_cast<uint8_t>(text[i + 1])));
    if (list != lengths.end()) {
      // Longest first, so the first hit is the longest match at i that fits before `end`.
      for (size_t length : list->second) {
        if (length > end - i) continue;
        auto hit = by_content.find(text.substr(i, length));
        if (hit != by_content.end()) return hit->second;
      }
    }
  }
  return single_byte[first];
}

template <typename Next>
void Tokenizer::SplitAtAdded(std::string_view text, ByteRange gap, std::span<const ByteRange> parse,
                             const AddedSet& candidates, Next&& next,
                             std::vector<TokenId>* out) const {
  if (candidates.empty) {
    next(gap);
    return;
  }
  // Whitespace absorbed by lstrip / rstrip stays inside the gap, as when the gap was its own
  // text; it may come from a range without parse_special (it is whitespace either way).
  const std::string_view bounded = text.substr(0, gap.end);
  auto range = std::partition_point(parse.begin(), parse.end(),
                                    [&](const ByteRange& r) { return r.end <= gap.begin; });
  size_t gap_begin = gap.begin, i = gap.begin;
  while (i < gap.end && range != parse.end()) {
    if (range->end <= i) {
      ++range;
      continue;
    }
    if (i < range->begin) {
      i = range->begin;
      continue;
    }
    const AddedToken* hit = candidates.Match(bounded, i, range->end);
    if (hit == nullptr) {
      ++i;
      continue;
    }
    size_t gap_end = i, token_end = i + hit->content.size();
    if (hit->lstrip) {
      while (size_t n = WhitespaceBefore(bounded.substr(0, gap_end), gap_end)) {
        if (gap_end - n < gap_begin) break;
        gap_end -= n;
      }
    }
    if (hit->rstrip) {
      while (size_t n = WhitespaceAt(bounded, token_end)) token_end += n;
    }
    next(ByteRange{gap_begin, gap_end});
    out->push_back(hit->id);
    gap_begin = i = token_end;
  }
  next(ByteRange{gap_begin, gap.end});
}

void Tokenizer::EncodeOrdinary(std::string_view text, std::vector<TokenId>* out) const {
  // The regexes need valid UTF-8. Each ill-formed subpart becomes a piece of its own, so its
  // bytes still encode (as byte tokens) and Decode gives them back exactly.
  auto encode_valid = [&](std::string_view run) {
    for (std::string_view piece : pre_->Split(run)) bpe_->EncodePiece(piece, out);
  };
  size_t run_begin = 0, i = 0;
  while (i < text.size()) {
    const Utf8Scan scan = ScanUtf8(text.substr(i));
    if (scan.step == Utf8Step::kValid) {
      i += scan.length;
      continue;
    }
    encode_valid(text.substr(run_begin, i - run_begin));
    bpe_->EncodePiece(text.substr(i, scan.length), out);
    i += scan.length;
    run_begin = i;
  }
  encode_valid(text.substr(run_begin));
}

Result<std::vector<TokenId>> Tokenizer::EncodeRanges(std::string_view text,
                                                     std::span<const ByteRange> parse,
                                                     bool add_bos) const {
  std::vector<TokenId> out;
  if (add_bos) {
    if (!bos_) {
      return Status::FailedPrecondition(std::string("add_bos: the tokenizer has no BOS token '") +
                                        std::string(kBosToken) + "'");
    }
    out.push_back(*bos_);
  }
  auto ordinary = [&](ByteRange r) { EncodeOrdinary(text.substr(r.begin, r.end - r.begin), &out); };
  if (parse.empty()) {
    ordinary({0, text.size()});
    return out;
  }
  // Special tokens first, then the other added tokens in the stretches between them.
  auto plain = [&](ByteRange r) { SplitAtAdded(text, r, parse, plain_added_, ordinary, &out); };
  SplitAtAdded(text, {0, text.size()}, parse, special_added_, plain, &out);
  return out;
}

Result<std::vector<TokenId>> Tokenizer::Encode(std::string_view text,
                                               const EncodeOptions& options) const {
  const ByteRange all{0, text.size()};
  return EncodeRanges(text, options.parse_special ? std::span(&all, 1) : std::span<ByteRange>(),
                      options.add_bos);
}

Result<std::vector<TokenId>> Tokenizer::EncodeSegments(std::span<const TextSegment> segments,
                                                       const EncodeOptions& options) const {
  std::string text;
  std::vector<ByteRange> parse;  // consecutive parse_special segments make one range
  for (const TextSegment& segment : segments) {
    const size_t begin = text.size();
    text += segment.text;
    if (!options.parse_special || !segment.parse_special || segment.text.empty()) continue;
    if (!parse.empty() && parse.back().end == begin) {
      parse.back().end = text.size();
    } else {
      parse.push_back({begin, text.size()});
    }
  }
  return EncodeRanges(text, parse, options.add_bos);
}

Result<std::string> Tokenizer::Decode(std::span<const TokenId> ids,
                                      const DecodeOptions& options) const {
  std::string out;
  for (TokenId id : ids) {
    const std::string* bytes = TokenBytes(id);
    if (bytes == nullptr) {
      return Status::OutOfRange("token id " + std::to_string(id) + " is not in the vocabulary " +
                                "(ids 0.." + std::to_string(vocab_size() - 1) + ")");
    }
    if (options.skip_special_tokens && tokens_[id].special) continue;
    out += *bytes;
  }
  return out;
}

Result<std::string> Tokenizer::DecodeText(std::span<const TokenId> ids,
                                          const DecodeOptions& options) const {
  DSV4_ASSIGN_OR_RETURN(std::string bytes, Decode(ids, options));
  return SanitizeUtf8(bytes);
}

const std::string* Tokenizer::TokenBytes(TokenId id) const {
  if (id < 0 || id >= vocab_size() || !tokens_[id].present) return nullptr;
  return &tokens_[id].bytes;
}

bool Tokenizer::IsSpecial(TokenId id) const {
  return id >= 0 && id < vocab_size() && tokens_[id].special;
}

std::optional<TokenId> Tokenizer::TokenToId(std::string_view token) const {
  auto added = added_by_content_.find(std::string(token));
  if (added != added_by_content_.end()) return added->second;
  auto it = bpe_->vocab().find(std::string(token));
  if (it != bpe_->vocab().end()) return it->second;
  return std::nullopt;
}

Result<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::filesystem::path& dir) {
  const std::filesystem::path file = dir / "tokenizer.json";
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) {
    return Status::NotFound("tokenizer.json not found in " + dir.string());
  }
  return Tokenizer::FromFile(file);
}

}  // namespace dsv4::tokenizer
