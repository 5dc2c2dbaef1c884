#include "checkpoint/json_file.h"

#include <string>

#include "core/file_read.h"
#include "core/json_nesting.h"

namespace dsv4::checkpoint {

Result<nlohmann::json> ReadJsonFile(const std::filesystem::path& path, uint64_t max_bytes,
                                    std::string_view what) {
  DSV4_ASSIGN_OR_RETURN(const std::string text, ReadFileLimited(path, max_bytes, what));
  const std::string label = path.string() + " (" + std::string(what) + ")";
  if (Status s = CheckJsonNesting(text, kDefaultMaxJsonDepth, label); !s.ok()) {
    return Status::DataLoss(s.message());
  }
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    return Status::DataLoss(label + ": not valid JSON: " + e.what());
  }
}

}  // namespace dsv4::checkpoint
