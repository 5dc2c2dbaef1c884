// A loaded model ready to run from the CLI: the checkpoint (or the built-in model), the V4
// forward pass over it and a thread pool.
#pragma once

#include <memory>
#include <string>

#include "core/thread_pool.h"
#include "model/checkpoint.h"
#include "model/v4/model.h"

namespace dsv4::cli {

struct V4Session {
  model::Checkpoint checkpoint;
  std::unique_ptr<v4::Model> model;
  std::unique_ptr<ThreadPool> pool;
};

// `dir` empty -> the built-in default model. `threads` 0 -> all cores.
// Unimplemented for a DeepSeek-V3.2 checkpoint (its forward pass lives elsewhere).
Result<V4Session> OpenV4Session(const std::string& dir, int threads);

}  // namespace dsv4::cli
