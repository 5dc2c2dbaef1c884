#include "model_arg.h"

#include <cstdio>

#include "testing/weight_generator.h"
#include "runner/loaded_model.h"

namespace dsv4::cli {

Result<checkpoint::Checkpoint> LoadModelArg(const std::string& dir) {
  if (dir.empty()) return fixtures::BuiltinDefaultModel();
  return checkpoint::OpenCheckpoint(dir);
}

ModelFactory ModelArgFactory(const std::string& dir) {
  return [dir]() -> Result<std::unique_ptr<runner::LoadedModel>> {
    if (!dir.empty()) return runner::OpenModelFolder(dir);
    DSV4_ASSIGN_OR_RETURN(checkpoint::Checkpoint ck, fixtures::BuiltinDefaultModel());
    return runner::LoadCheckpoint(std::move(ck), dir);
  };
}

int ReportError(const Status& s) {
  std::fprintf(stderr, "error: %s\n", s.message().c_str());
  return 1;
}

}  // namespace dsv4::cli
