#include "model_session.h"

#include "model_arg.h"

namespace dsv4::cli {

Result<ModelSession> OpenModelSession(const std::string& dir, int threads,
                                      const checkpoint::LoadOptions& options) {
  DSV4_ASSIGN_OR_RETURN(checkpoint::Checkpoint ck, LoadModelArg(dir));
  return OpenModelSession(std::move(ck), threads, options);
}

Result<ModelSession> OpenModelSession(checkpoint::Checkpoint checkpoint, int threads,
                                      const checkpoint::LoadOptions& options) {
  ModelSession s;
  s.checkpoint = std::move(checkpoint);
  DSV4_ASSIGN_OR_RETURN(s.model, runner::CreateCausalLm(s.checkpoint.config,
                                                        *s.checkpoint.weights, options));
  s.pool = std::make_unique<ThreadPool>(threads);
  return s;
}

}  // namespace dsv4::cli
