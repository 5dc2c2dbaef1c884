#include "tokenizer/byte_level.h"

#include "tokenizer/utf8.h"

namespace dsv4::tokenizer {

ByteLevelMap::ByteLevelMap() {
  cp_to_byte_.fill(-1);
  uint32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    const uint32_t cp = printable ? static_cast<uint32_t>(b) : next++;
    byte_to_cp_[b] = cp;
    AppendUtf8(cp, &byte_to_utf8_[b]);
    cp_to_byte_[cp] = static_cast<int16_t>(b);
  }
}

const ByteLevelMap& ByteLevelMap::Get() {
  static const ByteLevelMap map;
  return map;
}

std::optional<uint8_t> ByteLevelMap::Byte(uint32_t cp) const {
  if (cp >= cp_to_byte_.size() || cp_to_byte_[cp] < 0) return std::nullopt;
  return static_cast<uint8_t>(cp_to_byte_[cp]);
}

std::string ByteLevelMap::Encode(std::string_view bytes) const {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += byte_to_utf8_[static_cast<uint8_t>(c)];
  return out;
}

std::string ByteLevelMap::Decode(std::string_view mapped) const {
  std::string out;
  out.reserve(mapped.size());
  while (!mapped.empty()) {
    const Utf8Scan scan = ScanUtf8(mapped);
    if (scan.step != Utf8Step::kValid) {  // not produced by Encode; keep the bytes as they are
      out.append(mapped.substr(0, scan.length));
      mapped.remove_prefix(scan.length);
      continue;
    }
    size_t len = 0;
    const uint32_t cp = DecodeUtf8(mapped, &len);
    if (std::optional<uint8_t> b = Byte(cp)) {
      out.push_back(static_cast<char>(*b));
    } else {
      out.append(mapped.substr(0, len));
    }
    mapped.remove_prefix(len);
  }
  return out;
}

}  // namespace dsv4::tokenizer
