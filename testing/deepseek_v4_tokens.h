// DeepSeek-V4's added tokens (the named ones of docs spec §11.6) and a V4-style tokenizer.json
// built from DeepSeek-V3's: DeepSeek-V3, V3.2 and V4 share the byte-level BPE (128,000 base
// tokens, the same merges and pre-tokenizer); V4 differs only in its added tokens. This table
// is the one place the tests and fixtures take V4's token ids from: the tiny tokenizer
// generator gives the chat-format tokens (`chat`) to its top ids in this order, and the
// real-tokenizer tests put the whole table on top of V3's base vocabulary.
//
// Ids and contents are from the spec; where it names a range without contents (128815-128820
// repo/file, 128823-128824, 128826-128827, 128829-128839 task, 128842-128846 search/url,
// 128847-129279 multimodal) the table has no entry. The `special` flags follow DeepSeek-V3's
// file for the tokens V3 has; the V4-only ones are marked not special, as V3.1 marks
// <think> (the spec does not say).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "core/status.h"

namespace dsv4::fixtures {

struct V4AddedToken {
  int64_t id;
  std::string_view content;
  bool special;  // tokenizer.json "special" (skipped by skip_special_tokens)
  bool chat;     // written by DeepSeek-V4's chat format (tokenizer/chat_format.h)
};

// Sorted by id. Static storage.
std::span<const V4AddedToken> DeepSeekV4AddedTokens();

// DeepSeek-V3's tokenizer.json text with its added tokens replaced: V3's entries below
// 128800 (the sentence tokens and the <｜place▁holder▁no▁N｜> tokens) are kept, the rest
// replaced by DeepSeekV4AddedTokens() from 128800 on. InvalidArgument when `v3_json` is not
// a JSON object with an "added_tokens" list.
Result<std::string> DeepSeekV4StyleTokenizerJson(std::string_view v3_json);

}  // namespace dsv4::fixtures
