#include "tokenizer/pre_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tokenizer/utf8.h"

namespace dsv4::tokenizer {
namespace {

using nlohmann::json;

pcre2_code* Code(void* p) { return static_cast<pcre2_code*>(p); }

Result<SplitBehavior> ParseBehavior(const json& j, const std::string& label) {
  if (!j.is_string()) {
    return Status::InvalidArgument(label + ".behavior: expected a string, got " + j.dump());
  }
  const std::string s = j.get<std::string>();
  if (s == "Removed") return SplitBehavior::kRemoved;
  if (s == "Isolated") return SplitBehavior::kIsolated;
  if (s == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (s == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (s == "Contiguous") return SplitBehavior::kContiguous;
  return Status::InvalidArgument(label + ".behavior: expected one of Removed, Isolated, " +
                                 "MergedWithPrevious, MergedWithNext, Contiguous, got '" + s + "'");
}

bool FlagOr(const json& j, const char* key, bool fallback) {
  return j.contains(key) && j.at(key).is_boolean() ? j.at(key).get<bool>() : fallback;
}

// Cuts `piece` at the regex matches and regroups matches and gaps per `behavior`, like
// tokenizers' NormalizedString::split.
void SplitPiece(std::string_view piece, const Regex& regex, SplitBehavior behavior, bool invert,
                std::vector<std::pair<size_t, size_t>>* scratch,
                std::vector<std::string_view>* out) {
  scratch->clear();
  regex.FindAll(piece, scratch);
  // Spans covering the piece: (begin, end, is_match).
  struct Span {
    size_t begin, end;
    bool match;
  };
  std::vector<Span> spans;
  size_t prev = 0;
  for (const auto& [b, e] : *scratch) {
    if (b > prev) spans.push_back({prev, b, invert});
    spans.push_back({b, e, !invert});
    prev = e;
  }
  if (prev < piece.size()) spans.push_back({prev, piece.size(), invert});

  auto emit = [&](size_t b, size_t e) {
    if (e > b) out->push_back(piece.substr(b, e - b));
  };
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const Span& s : spans) emit(s.begin, s.end);
      break;
    case SplitBehavior::kRemoved:
      for (const Span& s : spans) {
        if (!s.match) emit(s.begin, s.end);
      }
      break;
    case SplitBehavior::kMergedWithPrevious: {
      size_t start = 0;
      for (const Span& s : spans) {
        if (s.match) {
          emit(start, s.end);
          start = s.end;
        }
      }
      emit(start, piece.size());
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      size_t start = 0;
      for (const Span& s : spans) {
        if (s.match && s.begin > start) {
          emit(start, s.begin);
          start = s.begin;
        }
      }
      emit(start, piece.size());
      break;
    }
    case SplitBehavior::kContiguous: {
      size_t i = 0;
      while (i < spans.size()) {
        size_t j = i + 1;
        if (spans[i].match) {
          while (j < spans.size() && spans[j].match) ++j;
        }
        emit(spans[i].begin, spans[j - 1].end);
        i = j;
      }
      break;
    }
  }
}

}  // namespace

Result<std::unique_ptr<Regex>> Regex::Compile(std::string_view pattern, bool literal,
                                              std::string_view label) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  // PCRE2_LITERAL allows UTF but not UCP (which only matters for escapes anyway).
  const uint32_t options = literal ? PCRE2_UTF | PCRE2_LITERAL : PCRE2_UTF | PCRE2_UCP;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   options, &error_code, &error_offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof(message));
    return Status::InvalidArgument(
        std::string(label) + ": cannot compile regex '" + std::string(pattern) + "' at offset " +
        std::to_string(error_offset) + ": " + reinterpret_cast<const char*>(message));
  }
  // JIT is only a speed-up; the interpreter gives the same matches where it is unavailable.
  (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  std::unique_ptr<Regex> r(new Regex());
  r->pattern_ = std::string(pattern);
  r->code_ = code;
  return r;
}

Regex::~Regex() { pcre2_code_free(Code(code_)); }

void Regex::FindAll(std::string_view text, std::vector<std::pair<size_t, size_t>>* matches) const {
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(Code(code_), nullptr);
  DSV4_CHECK(md != nullptr);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t offset = 0;
  while (offset < text.size()) {
    // The caller guarantees valid UTF-8, so PCRE2 need not re-check it at every offset.
    const int rc =
        pcre2_match(Code(code_), subject, text.size(), offset, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    DSV4_CHECK_MSG(rc >= 0, "pcre2_match failed on " + pattern_);
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t begin = ov[0], end = ov[1];
    if (end > begin) {
      matches->emplace_back(begin, end);
      offset = end;
    } else {
      // An empty match: step over one character so the scan always advances.
      offset = begin + ScanUtf8(text.substr(begin)).length;
    }
  }
  pcre2_match_data_free(md);
}

PreTokenizer::~PreTokenizer() = default;

Status PreTokenizer::AddStage(const json& j, const std::string& label) {
  if (!j.is_object() || !j.contains("type") || !j.at("type").is_string()) {
    return Status::InvalidArgument(label + ": expected an object with a string 'type', got " +
                                   j.dump());
  }
  const std::string type = j.at("type").get<std::string>();
  if (type == "Sequence") {
    if (!j.contains("pretokenizers") || !j.at("pretokenizers").is_array()) {
      return Status::InvalidArgument(label + ".pretokenizers: expected a list of stages");
    }
    const json& list = j.at("pretokenizers");
    for (size_t i = 0; i < list.size(); ++i) {
      DSV4_RETURN_IF_ERROR(AddStage(list[i], label + ".pretokenizers[" + std::to_string(i) + "]"));
    }
    return Status::Ok();
  }
  if (type == "Split") {
    const json* pattern = j.contains("pattern") ? &j.at("pattern") : nullptr;
    std::string text;
    bool literal = false;
    if (pattern && pattern->is_object() && pattern->contains("Regex") &&
        pattern->at("Regex").is_string()) {
      text = pattern->at("Regex").get<std::string>();
    } else if (pattern && pattern->is_object() && pattern->contains("String") &&
               pattern->at("String").is_string()) {
      text = pattern->at("String").get<std::string>();
      literal = true;
    } else {
      return Status::InvalidArgument(label + ".pattern: expected {\"Regex\": ...} or " +
                                     "{\"String\": ...}, got " +
                                     (pattern ? pattern->dump() : std::string("nothing")));
    }
    Stage stage;
    DSV4_ASSIGN_OR_RETURN(stage.regex, Regex::Compile(text, literal, label + ".pattern"));
    DSV4_ASSIGN_OR_RETURN(stage.behavior,
                          ParseBehavior(j.value("behavior", json("Isolated")), label));
    stage.invert = FlagOr(j, "invert", false);
    stages_.push_back(std::move(stage));
    return Status::Ok();
  }
  if (type == "ByteLevel") {
    if (FlagOr(j, "add_prefix_space", false)) {
      return Status::Unimplemented(label + ".add_prefix_space: expected false, got true " +
                                   "(prefix spaces are not supported)");
    }
    if (FlagOr(j, "use_regex", true)) {
      Stage stage;
      DSV4_ASSIGN_OR_RETURN(stage.regex, Regex::Compile(kGpt2Regex, false, label));
      stages_.push_back(std::move(stage));
    }
    byte_level_ = true;
    return Status::Ok();
  }
  return Status::Unimplemented(label + ".type: pre-tokenizer '" + type +
                               "' is not supported (expected Sequence, Split or ByteLevel)");
}

Result<std::unique_ptr<PreTokenizer>> PreTokenizer::FromJson(const json& j,
                                                             std::string_view label) {
  std::unique_ptr<PreTokenizer> p(new PreTokenizer());
  if (!j.is_null()) DSV4_RETURN_IF_ERROR(p->AddStage(j, std::string(label)));
  return p;
}

std::vector<std::string_view> PreTokenizer::Split(std::string_view text) const {
  std::vector<std::string_view> pieces;
  if (text.empty()) return pieces;
  pieces.push_back(text);
  std::vector<std::string_view> next;
  std::vector<std::pair<size_t, size_t>> scratch;
  for (const Stage& stage : stages_) {
    next.clear();
    for (std::string_view piece : pieces) {
      SplitPiece(piece, *stage.regex, stage.behavior, stage.invert, &scratch, &next);
    }
    pieces.swap(next);
  }
  return pieces;
}

nlohmann::ordered_json DeepSeekPreTokenizerJson() {
  using nlohmann::ordered_json;
  auto split = [](std::string_view regex) {
    return ordered_json{{"type", "Split"},
                        {"pattern", {{"Regex", std::string(regex)}}},
                        {"behavior", "Isolated"},
                        {"invert", false}};
  };
  return ordered_json{{"type", "Sequence"},
                      {"pretokenizers",
                       {split(kDeepSeekDigitsRegex), split(kDeepSeekCjkRegex),
                        split(kDeepSeekWordRegex),
                        ordered_json{{"type", "ByteLevel"},
                                     {"add_prefix_space", false},
                                     {"trim_offsets", true},
                                     {"use_regex", false}}}}};
}

}  // namespace dsv4::tokenizer
