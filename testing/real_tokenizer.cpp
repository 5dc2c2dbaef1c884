#include "testing/real_tokenizer.h"

#include <cstdlib>

namespace dsv4::fixtures {

RealTokenizerFiles FindRealTokenizerFiles() {
  RealTokenizerFiles f;
  if (const char* dir = std::getenv("DSV4_TOKENIZER_CACHE"); dir != nullptr && *dir != '\0') {
    f.dir = dir;
  } else {
    std::filesystem::path cache;
    if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg != '\0') {
      cache = xdg;
    } else if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
      cache = std::filesystem::path(home) / ".cache";
    } else {
      f.missing = "neither DSV4_TOKENIZER_CACHE, XDG_CACHE_HOME nor HOME is set";
      return f;
    }
    f.dir = cache / "dsv4" / (std::string("tokenizer-lenml-") + kLenmlVersion);
  }
  const std::filesystem::path modules = f.dir / "node_modules" / "@lenml";
  f.tokenizer_json = modules / "tokenizer-deepseek_v3" / "models" / "tokenizer.json";
  std::error_code ec;
  f.has_tokenizer = std::filesystem::is_regular_file(f.tokenizer_json, ec);
  const bool has_lib = std::filesystem::is_regular_file(modules / "tokenizers" / "package.json", ec);
  const bool node_on_path = std::system("command -v node >/dev/null 2>&1") == 0;
  f.has_node = has_lib && node_on_path;
  if (!f.has_tokenizer) {
    f.missing = f.tokenizer_json.string() + " not found (scripts/setup fetches it; needs network)";
  } else if (!f.has_node) {
    f.missing = !node_on_path ? std::string("node is not on PATH (scripts/setup installs nodejs)")
                              : (modules / "tokenizers").string() +
                                    " not found (scripts/setup installs it; needs network)";
  }
  return f;
}

}  // namespace dsv4::fixtures
