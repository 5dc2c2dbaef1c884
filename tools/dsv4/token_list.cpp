#include "token_list.h"

#include <cctype>

#include "core/file_read.h"

namespace dsv4::cli {

Result<std::vector<int32_t>> ParseTokenList(const std::string& text, const std::string& what) {
  std::vector<int32_t> out;
  std::string item;
  auto flush = [&]() -> Status {
    if (item.empty()) return Status::Ok();
    for (char ch : item) {
      if (!std::isdigit(static_cast<unsigned char>(ch))) {
        return Status::InvalidArgument(what + ": item " + std::to_string(out.size()) + " '" +
                                       item + "' is not a non-negative integer token id");
      }
    }
    if (item.size() > 10 || std::stoll(item) > INT32_MAX) {
      return Status::InvalidArgument(what + ": token id '" + item + "' is too large");
    }
    if (static_cast<int64_t>(out.size()) == kMaxTokenListTokens) {
      return Status::InvalidArgument(what + ": more than " + std::to_string(kMaxTokenListTokens) +
                                     " token ids");
    }
    out.push_back(static_cast<int32_t>(std::stoll(item)));
    item.clear();
    return Status::Ok();
  };
  for (char ch : text) {
    if (ch == ',' || std::isspace(static_cast<unsigned char>(ch))) {
      DSV4_RETURN_IF_ERROR(flush());
    } else {
      item += ch;
    }
  }
  DSV4_RETURN_IF_ERROR(flush());
  if (out.empty()) return Status::InvalidArgument(what + ": no token ids");
  return out;
}

Result<std::vector<int32_t>> ReadTokenFile(const std::string& path) {
  DSV4_ASSIGN_OR_RETURN(const std::string text,
                        ReadFileLimited(path, kMaxTokenFileBytes, "token file"));
  return ParseTokenList(text, path);
}

}  // namespace dsv4::cli
