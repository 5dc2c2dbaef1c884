#include "tokenizer/detokenizer.h"

#include "tokenizer/utf8.h"

namespace dsv4::tokenizer {

Result<std::string> Detokenizer::Feed(TokenId id) {
  const std::string* bytes = tokenizer_.TokenBytes(id);
  if (bytes == nullptr) {
    return Status::OutOfRange("token id " + std::to_string(id) + " is not in the vocabulary");
  }
  if (options_.skip_special_tokens && tokenizer_.IsSpecial(id)) return std::string();
  std::string buffer = std::move(pending_);
  pending_.clear();
  buffer += *bytes;
  std::string out;
  std::string_view rest(buffer);
  while (!rest.empty()) {
    const Utf8Scan scan = ScanUtf8(rest);
    if (scan.step == Utf8Step::kIncomplete) {
      pending_ = std::string(rest);  // only the last character can be unfinished
      break;
    }
    // A maximal ill-formed subpart is decided by the bytes seen so far, so replacing it now
    // gives what SanitizeUtf8 of the whole stream gives.
    out.append(scan.step == Utf8Step::kValid ? rest.substr(0, scan.length) : kReplacementChar);
    rest.remove_prefix(scan.length);
  }
  return out;
}

std::string Detokenizer::Flush() {
  std::string out = pending_.empty() ? std::string() : std::string(kReplacementChar);
  pending_.clear();
  return out;
}

}  // namespace dsv4::tokenizer
