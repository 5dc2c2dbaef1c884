// GPT-2's reversible byte <-> Unicode map, used by every byte-level BPE tokenizer (GPT-2,
// Llama 3, DeepSeek): vocabulary strings are written in this alphabet so that every byte has
// a printable character. Bytes 0x21..0x7E, 0xA1..0xAC and 0xAE..0xFF map to the code point of
// the same value; the other 68 bytes map, in byte order, to U+0100.. (so ' ' is U+0120 'Ġ').
// Source: openai/gpt-2 src/encoder.py bytes_to_unicode(), which Hugging Face tokenizers'
// ByteLevel pre-tokenizer and decoder reproduce.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dsv4::tokenizer {

class ByteLevelMap {
 public:
  // The process-wide map (built once; thread-safe to read).
  static const ByteLevelMap& Get();

  // The code point that stands for byte `b`.
  uint32_t CodePoint(uint8_t b) const { return byte_to_cp_[b]; }
  // The UTF-8 text of that code point (1 or 2 bytes).
  const std::string& Char(uint8_t b) const { return byte_to_utf8_[b]; }
  // The byte a code point stands for, if it is one of the 256 characters.
  std::optional<uint8_t> Byte(uint32_t cp) const;

  // Raw bytes -> mapped text ("a b" -> "aĠb").
  std::string Encode(std::string_view bytes) const;
  // Mapped text -> raw bytes. A character outside the alphabet (as in an added token's
  // content) passes through as its own UTF-8.
  std::string Decode(std::string_view mapped) const;

 private:
  ByteLevelMap();
  std::array<uint32_t, 256> byte_to_cp_{};
  std::array<std::string, 256> byte_to_utf8_{};
  std::array<int16_t, 324> cp_to_byte_{};  // every mapped code point is < 256 + 68
};

}  // namespace dsv4::tokenizer
