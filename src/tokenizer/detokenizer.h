// Streaming detokenizer: turns generated token ids, one at a time, into text that is always
// complete, well-formed UTF-8. A byte-level token may end inside a character (an emoji is
// often two or three tokens); the bytes of an unfinished character are held back until the
// token that completes it arrives. Ill-formed bytes become U+FFFD as soon as they are known
// to be ill-formed, and Flush() turns a character left unfinished at the end into U+FFFD.
//
// Invariant: the concatenation of every Feed() result and the final Flush() equals
// Tokenizer::DecodeText(all ids) - the same bytes, the same replacements.
//
// One Detokenizer per sequence; not thread-safe. The Tokenizer must outlive it.
#pragma once

#include <string>

#include "core/status.h"
#include "tokenizer/tokenizer.h"

namespace dsv4::tokenizer {

class Detokenizer {
 public:
  explicit Detokenizer(const Tokenizer& tokenizer, DecodeOptions options = {})
      : tokenizer_(tokenizer), options_(options) {}

  // Adds one token; returns the text that is now complete (possibly empty). OutOfRange for
  // an id that is not a token (the state is then unchanged).
  Result<std::string> Feed(TokenId id);
  // Ends the stream: returns what is held back, with U+FFFD for an unfinished character,
  // and resets the state so the Detokenizer can start a new stream.
  std::string Flush();

  // Bytes held back, waiting for the rest of a character (0..3).
  size_t pending_bytes() const { return pending_.size(); }

 private:
  const Tokenizer& tokenizer_;
  DecodeOptions options_;
  std::string pending_;  // a well-formed prefix of one UTF-8 character, never more
};

}  // namespace dsv4::tokenizer
