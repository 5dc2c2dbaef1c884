#include "model_arg.h"

#include <cstdio>

#include "testing/weight_generator.h"
#include "runner/loaded_model.h"

namespace dsv4::cli {

Result<checkpoint::Checkpoint> LoadModelArg(const std::string& dir) {
  if (dir.empty()) return fixtures::BuiltinDefaultModel();
  return checkpoint::OpenCheckpoint(dir);
}

ModelFactory ModelArgFactory(const std::string& dir, checkpoint::LoadOptions options) {
  return [dir, options]() -> Result<std::unique_ptr<runner::LoadedModel>> {
    if (!dir.empty()) return runner::OpenModelFolder(dir, options);
    DSV4_ASSIGN_OR_RETURN(checkpoint::Checkpoint ck, fixtures::BuiltinDefaultModel());
    return runner::LoadCheckpoint(std::move(ck), dir, options);
  };
}

void AddWeightCheckFlag(CLI::App& cmd, checkpoint::LoadOptions* options) {
  cmd.add_flag_callback(
      "--no-weight-check", [options] { options->check_finite = false; },
      "Skip the load-time scan that refuses NaN/Inf weights (saves one read of the FP8/BF16/"
      "F32 tensors and scales, e.g. for a huge checkpoint known to be good)");
}

int ReportError(const Status& s) {
  std::fprintf(stderr, "error: %s\n", s.message().c_str());
  return 1;
}

}  // namespace dsv4::cli
