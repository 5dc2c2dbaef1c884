#include "prefill_flags.h"

namespace dsv4::cli {

void AddPrefillChunkOption(CLI::App& cmd, int64_t* chunk) {
  cmd.add_option("--chunk", *chunk,
                 "Prefill in chunks of N tokens (0: the whole prompt in one step; memory then "
                 "grows with the prompt)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
}

}  // namespace dsv4::cli
