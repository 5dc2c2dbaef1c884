#include "server/text_stream.h"

#include <algorithm>

namespace dsv4::server {

size_t FindFirstOf(std::string_view text, std::span<const std::string> needles, size_t* which) {
  size_t best = std::string_view::npos;
  for (size_t i = 0; i < needles.size(); ++i) {
    const size_t p = text.find(needles[i]);
    if (p < best) {
      best = p;
      *which = i;
    }
  }
  return best;
}

size_t ReleasableLength(std::string_view text, std::span<const std::string> needles) {
  size_t held = 0;
  for (const std::string& n : needles) {
    // Longest proper prefix of n that text ends with.
    const size_t max_len = std::min(n.size() - 1, text.size());
    for (size_t len = max_len; len > held; --len) {
      if (text.substr(text.size() - len) == std::string_view(n).substr(0, len)) {
        held = len;
        break;
      }
    }
  }
  return text.size() - held;
}

TextStream::TextStream(const tokenizer::Tokenizer& tokenizer, std::vector<std::string> stops,
                       int32_t skip_token)
    : detokenizer_(tokenizer), stops_(std::move(stops)), skip_token_(skip_token) {}

std::string TextStream::Release(size_t n) {
  std::string out = pending_.substr(0, n);
  pending_.erase(0, n);
  text_ += out;
  return out;
}

Result<std::string> TextStream::Feed(int32_t token) {
  if (stopped_ || token == skip_token_) return std::string();
  DSV4_ASSIGN_OR_RETURN(std::string piece, detokenizer_.Feed(token));
  pending_ += piece;
  // Nothing released earlier can be part of a match (it was held back), so a match starts
  // inside pending_.
  size_t which = 0;
  const size_t at = FindFirstOf(pending_, stops_, &which);
  if (at != std::string::npos) {
    stopped_ = true;
    std::string out = Release(at);
    pending_.clear();
    return out;
  }
  return Release(ReleasableLength(pending_, stops_));
}

std::string TextStream::Finish() {
  if (stopped_) return std::string();
  pending_ += detokenizer_.Flush();
  // The flushed U+FFFD may complete a stop string.
  size_t which = 0;
  const size_t at = FindFirstOf(pending_, stops_, &which);
  if (at != std::string::npos) {
    stopped_ = true;
    std::string out = Release(at);
    pending_.clear();
    return out;
  }
  return Release(pending_.size());
}

}  // namespace dsv4::server
