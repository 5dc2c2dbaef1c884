// JSON text exactly as Python's json.dumps(value, ensure_ascii=False) writes it, which is how
// DeepSeek's encoding_dsv4.py (to_json) puts tool schemas and non-string tool arguments into
// the prompt: ", " between items, ": " after keys, keys in their given order, non-ASCII
// characters as themselves, and only '"', '\\' and control characters escaped (\n \r \t \b \f,
// others as \u00XX with lowercase hex). The model was trained on this spelling, so the engine
// must reproduce it byte for byte; nlohmann's dump() differs (no spaces).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace dsv4::tokenizer {

// `value` should be an ordered_json so object keys keep their order (Python dicts keep
// insertion order; nlohmann::json would sort them). Floats use the shortest round-trip form,
// as Python's repr does (1.5, 1e-05, 1e+16); invalid UTF-8 in strings becomes U+FFFD.
std::string PythonJsonDumps(const nlohmann::ordered_json& value);

}  // namespace dsv4::tokenizer
