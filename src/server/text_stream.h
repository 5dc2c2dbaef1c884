// Generated tokens -> the text a client sees. Text is decoded incrementally (never broken
// UTF-8), stop strings are matched on the decoded text, and text that might still turn into
// a stop string is held back, so a streamed response never shows what a later match cuts.
// One TextStream per request; not thread-safe. The Tokenizer must outlive it.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "tokenizer/detokenizer.h"
#include "tokenizer/tokenizer.h"

namespace dsv4::server {

// The earliest position where any of `needles` occurs in `text` (ties: the first needle);
// npos when none does. *which is set to the index of the needle found.
size_t FindFirstOf(std::string_view text, std::span<const std::string> needles, size_t* which);

// How much of `text` can be released: its length less the longest suffix that is a proper
// prefix of one of `needles` (that suffix may still grow into a match).
size_t ReleasableLength(std::string_view text, std::span<const std::string> needles);

class TextStream {
 public:
  // `stops` are non-empty UTF-8 strings. `skip_token` (the EOS id, or -1) contributes no
  // text: it ends a turn, and its string would otherwise leak into the output.
  TextStream(const tokenizer::Tokenizer& tokenizer, std::vector<std::string> stops,
             int32_t skip_token);

  // Adds one generated token and returns the text released by it (possibly empty). Once a
  // stop string matched, stopped() is true, the text up to the match has been released and
  // every later call returns "". OutOfRange for an id that is not a token.
  Result<std::string> Feed(int32_t token);
  // The stream ended without a stop string: releases what was held back.
  std::string Finish();

  bool stopped() const { return stopped_; }
  // Everything released so far.
  const std::string& text() const { return text_; }

 private:
  std::string Release(size_t n);

  tokenizer::Detokenizer detokenizer_;
  std::vector<std::string> stops_;
  int32_t skip_token_;
  std::string pending_;  // decoded, not yet released: may be the start of a stop string
  std::string text_;
  bool stopped_ = false;
};

}  // namespace dsv4::server
