#include "model_session.h"

#include "model_arg.h"

namespace dsv4::cli {

Result<ModelSession> OpenModelSession(const std::string& dir, int threads,
                                      const checkpoint::LoadOptions& options) {
  ModelSession s;
  DSV4_ASSIGN_OR_RETURN(s.checkpoint, LoadModelArg(dir));
  DSV4_ASSIGN_OR_RETURN(s.model, runner::CreateCausalLm(s.checkpoint.config,
                                                        *s.checkpoint.weights, options));
  s.pool = std::make_unique<ThreadPool>(threads);
  return s;
}

}  // namespace dsv4::cli
