#include "tokenizer/utf8.h"

#include "core/check.h"

namespace dsv4::tokenizer {
namespace {

// The allowed range of the second byte for each lead byte (Table 3-7); later continuation
// bytes are always 80..BF.
struct LeadInfo {
  int length;  // 0: not a lead byte
  uint8_t second_lo;
  uint8_t second_hi;
};

LeadInfo Lead(uint8_t b) {
  if (b < 0x80) return {1, 0, 0};
  if (b < 0xC2) return {0, 0, 0};  // continuation bytes and the overlong leads C0, C1
  if (b < 0xE0) return {2, 0x80, 0xBF};
  if (b == 0xE0) return {3, 0xA0, 0xBF};
  if (b == 0xED) return {3, 0x80, 0x9F};  // excludes the surrogates D800..DFFF
  if (b < 0xF0) return {3, 0x80, 0xBF};
  if (b == 0xF0) return {4, 0x90, 0xBF};
  if (b < 0xF4) return {4, 0x80, 0xBF};
  if (b == 0xF4) return {4, 0x80, 0x8F};  // nothing above U+10FFFF
  return {0, 0, 0};                       // F5..FF never appear
}

}  // namespace

Utf8Scan ScanUtf8(std::string_view s) {
  DSV4_CHECK(!s.empty());
  const LeadInfo lead = Lead(static_cast<uint8_t>(s[0]));
  if (lead.length == 0) return {Utf8Step::kInvalid, 1};
  if (lead.length == 1) return {Utf8Step::kValid, 1};
  for (int i = 1; i < lead.length; ++i) {
    if (static_cast<size_t>(i) >= s.size()) return {Utf8Step::kIncomplete, s.size()};
    const uint8_t b = static_cast<uint8_t>(s[i]);
    const uint8_t lo = i == 1 ? lead.second_lo : 0x80;
    const uint8_t hi = i == 1 ? lead.second_hi : 0xBF;
    if (b < lo || b > hi) return {Utf8Step::kInvalid, static_cast<size_t>(i)};
  }
  return {Utf8Step::kValid, static_cast<size_t>(lead.length)};
}

bool IsValidUtf8(std::string_view s) {
  while (!s.empty()) {
    const Utf8Scan scan = ScanUtf8(s);
    if (scan.step != Utf8Step::kValid) return false;
    s.remove_prefix(scan.length);
  }
  return true;
}

std::string SanitizeUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  while (!s.empty()) {
    const Utf8Scan scan = ScanUtf8(s);
    if (scan.step == Utf8Step::kValid) {
      out.append(s.substr(0, scan.length));
    } else {
      out.append(kReplacementChar);
    }
    s.remove_prefix(scan.length);
  }
  return out;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  DSV4_DCHECK(cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF));
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

uint32_t DecodeUtf8(std::string_view s, size_t* length) {
  const Utf8Scan scan = ScanUtf8(s);
  DSV4_CHECK(scan.step == Utf8Step::kValid);
  *length = scan.length;
  const auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(s[i])); };
  switch (scan.length) {
    case 1:
      return b(0);
    case 2:
      return ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
    case 3:
      return ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
    default:
      return ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
  }
}

}  // namespace dsv4::tokenizer
