#include "core/json_nesting.h"

#include <string>

namespace dsv4 {

Status CheckJsonNesting(std::string_view text, int max_depth, std::string_view what) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '[':
      case '{':
        if (++depth > max_depth) {
          return Status::InvalidArgument(
              std::string(what) + ": JSON nested deeper than the limit of " +
              std::to_string(max_depth) + " levels (level " + std::to_string(depth) +
              " opens at byte " + std::to_string(i) + ")");
        }
        break;
      case ']':
      case '}':
        // Unbalanced closers are the parser's to report; never go below zero here.
        if (depth > 0) --depth;
        break;
      default:
        break;
    }
  }
  return Status::Ok();
}

}  // namespace dsv4
