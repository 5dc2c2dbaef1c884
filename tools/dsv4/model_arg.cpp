#include "model_arg.h"

#include <cstdio>

#include "model/weight_generator.h"

namespace dsv4::cli {

Result<model::Checkpoint> LoadModelArg(const std::string& dir) {
  if (dir.empty()) return model::BuiltinDefaultModel();
  return model::OpenCheckpoint(dir);
}

int ReportError(const Status& s) {
  std::fprintf(stderr, "error: %s\n", s.message().c_str());
  return 1;
}

}  // namespace dsv4::cli
