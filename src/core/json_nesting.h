// A nesting limit for JSON text, checked before any parser sees it. nlohmann's DOM (building,
// copying, destroying a value) recurses once per nesting level, so a body of 90,000 `[` in a
// row overflows a thread's stack; this scan is a flat loop and runs first on every JSON the
// program reads from a user or the network (request bodies, config.json, tokenizer.json,
// tokenizer_config.json, safetensors headers).
#pragma once

#include <cstdint>
#include <string_view>

#include "core/status.h"

namespace dsv4 {

// Nesting limits. Requests and checkpoint files nest 5-10 levels deep; tool arguments and
// JSON schemas inside a request somewhat more.
inline constexpr int kDefaultMaxJsonDepth = 64;
inline constexpr int kMaxJsonDepthLimit = 128;  // the largest limit a user may configure

// OK when no array or object in `text` is nested deeper than `max_depth` levels (a bare
// scalar is depth 0, `[]` is 1). Brackets inside strings (escapes included) do not count.
// Does not validate the JSON otherwise: the parser that runs next does. InvalidArgument
// otherwise, naming `what` (e.g. the file), the limit and the byte offset where it was passed.
[[nodiscard]] Status CheckJsonNesting(std::string_view text, int max_depth,
                                      std::string_view what);

}  // namespace dsv4
