// A loaded model ready to run from the CLI: the checkpoint (or the built-in model), the
// architecture's forward pass over it and a thread pool.
#pragma once

#include <memory>
#include <string>

#include "core/thread_pool.h"
#include "checkpoint/checkpoint.h"
#include "checkpoint/load_options.h"
#include "runner/causal_lm.h"

namespace dsv4::cli {

struct ModelSession {
  checkpoint::Checkpoint checkpoint;
  std::unique_ptr<runner::CausalLm> model;
  std::unique_ptr<ThreadPool> pool;
};

// `dir` empty -> the built-in default model. `threads` 0 -> all cores.
Result<ModelSession> OpenModelSession(const std::string& dir, int threads,
                                      const checkpoint::LoadOptions& options = {});
// The same over a checkpoint already opened (LoadModelArg).
Result<ModelSession> OpenModelSession(checkpoint::Checkpoint checkpoint, int threads,
                                      const checkpoint::LoadOptions& options = {});

}  // namespace dsv4::cli
