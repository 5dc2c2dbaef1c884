// When a request ends on its own (the engine's one place for token-level stops; stop strings
// on detokenized text are the server's, src/server/text_stream.h). Pure function.
#pragma once

#include <cstdint>

#include "dsv4/engine.h"

namespace dsv4::engine {

// Whether a request ends with `token`, its `num_generated`-th new token (counting it):
// kStop for the model's EOS or one of stop.stop_token_ids (neither when stop.ignore_eos),
// else kLength once stop.max_new_tokens are generated, else kNone (it goes on).
FinishReason StopAfter(const StopConditions& stop, int64_t eos_token_id, int32_t token,
                       int64_t num_generated);

}  // namespace dsv4::engine
