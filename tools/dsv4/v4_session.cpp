#include "v4_session.h"

#include "model_arg.h"

namespace dsv4::cli {

Result<V4Session> OpenV4Session(const std::string& dir, int threads) {
  V4Session s;
  DSV4_ASSIGN_OR_RETURN(s.checkpoint, LoadModelArg(dir));
  if (s.checkpoint.config.arch != model::Arch::kV4) {
    return Status::Unimplemented(s.checkpoint.name +
                                 ": this command runs DeepSeek-V4 checkpoints; the DeepSeek-V3.2 "
                                 "forward pass is not part of this build yet");
  }
  DSV4_ASSIGN_OR_RETURN(s.model, v4::Model::Create(s.checkpoint.config, *s.checkpoint.weights));
  s.pool = std::make_unique<ThreadPool>(threads);
  return s;
}

}  // namespace dsv4::cli
