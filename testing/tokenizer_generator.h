// Generates a small but real tokenizer.json for tiny models: byte-level BPE in DeepSeek's
// format (the same pre-tokenizer regexes, ByteLevel alphabet and special tokens as the real
// DeepSeek-V4 tokenizer), with merges learned by BPE training on a built-in English and code
// text, so text round-trips through a tiny model end to end. Deterministic: the same
// vocab_size always gives the same bytes.
//
// Id layout, mirroring DeepSeek's tokenizer: 0 <｜begin▁of▁sentence｜>, 1 <｜end▁of▁sentence｜>,
// 2 <｜▁pad▁｜>; 3..258 the 256 bytes (byte b is id 3 + b); then the learned merges in rank
// order; the chat-format tokens <｜User｜>, <｜Assistant｜>, <think>, </think>, ｜DSML｜ and
// <｜latest_reminder｜> take the top six ids (vocab_size - 6 .. vocab_size - 1). Training stops
// when the ids in between are used up or no pair occurs twice.
//
// The pre-tokenizer and the byte alphabet are the tokenizer library's (tokenizer/
// pre_tokenizer.h: DeepSeek's regexes and the splitting; tokenizer/byte_level.h), both in the
// file and for training: the merges are learned on the pieces the real tokenizer cuts.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace dsv4::fixtures {

// 3 sentence tokens + 256 bytes + 6 chat tokens.
inline constexpr int64_t kTinyTokenizerMinVocab = 265;

// tokenizer.json text for a model with `vocab_size` embedding rows. InvalidArgument when
// vocab_size < kTinyTokenizerMinVocab.
Result<std::string> GenerateTinyTokenizerJson(int64_t vocab_size);

// The built-in training text (ASCII English prose, C++ and Python, a little chat).
std::string_view TinyTokenizerCorpus();

}  // namespace dsv4::fixtures
