// --chunk of the commands that prefill a prompt in-process (run, logits): prompts are fed in
// pieces by default, so a long prompt's activations stay the size of one piece (peak memory
// flat in the prompt length; the output is bit-identical for any chunking).
#pragma once

#include <cstdint>

#include <CLI/CLI.hpp>

namespace dsv4::cli {

// Prefill chunk when --chunk is not given: 2048 tokens (a 32K prompt prefilled in one piece
// peaked at 579 MB resident on the tiny model, in pieces of 2048 at 64 MB).
inline constexpr int64_t kDefaultPrefillChunk = 2048;

// Adds --chunk N to `cmd` (0: the whole prompt in one step); *chunk keeps its default.
void AddPrefillChunkOption(CLI::App& cmd, int64_t* chunk);

}  // namespace dsv4::cli
