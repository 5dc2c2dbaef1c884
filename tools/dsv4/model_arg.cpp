#include "model_arg.h"

#include <cstdio>

#include "testing/weight_generator.h"

namespace dsv4::cli {

Result<checkpoint::Checkpoint> LoadModelArg(const std::string& dir) {
  if (dir.empty()) return fixtures::BuiltinDefaultModel();
  return checkpoint::OpenCheckpoint(dir);
}

int ReportError(const Status& s) {
  std::fprintf(stderr, "error: %s\n", s.message().c_str());
  return 1;
}

}  // namespace dsv4::cli
