// UTF-8 helpers shared by the tokenizer, the streaming detokenizer and the chat parser.
// Validity follows the Unicode Standard, Table 3-7 (well-formed byte sequences): no overlong
// forms, no surrogates (U+D800..U+DFFF), nothing above U+10FFFF.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace dsv4::tokenizer {

inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

// What the bytes at the start of `s` hold.
enum class Utf8Step {
  kValid,       // a complete well-formed sequence of `length` bytes
  kInvalid,     // ill-formed: its maximal subpart is `length` bytes (one U+FFFD replaces it)
  kIncomplete,  // a well-formed prefix that `s` ends inside; more bytes may complete it
};
struct Utf8Scan {
  Utf8Step step;
  size_t length;  // >= 1 unless s is empty
};

// Classifies the sequence starting at s[0]. `s` must not be empty.
Utf8Scan ScanUtf8(std::string_view s);

// True if `s` is entirely well-formed UTF-8.
bool IsValidUtf8(std::string_view s);

// Replaces each maximal ill-formed subpart (and an incomplete sequence at the end) with
// U+FFFD, the "substitution of maximal subparts" practice of Unicode chapter 3 and the WHATWG
// decoder, which is also what Python's bytes.decode(errors="replace") does.
std::string SanitizeUtf8(std::string_view s);

// Appends the UTF-8 encoding of code point `cp` (cp <= 0x10FFFF, not a surrogate).
void AppendUtf8(uint32_t cp, std::string* out);

// Decodes the well-formed sequence at the start of `s` (ScanUtf8 said kValid) into a code
// point and its length.
uint32_t DecodeUtf8(std::string_view s, size_t* length);

}  // namespace dsv4::tokenizer
