#include "core/file_read.h"

#include <fstream>
#include <system_error>

namespace dsv4 {

namespace fs = std::filesystem;

Result<std::string> ReadFileLimited(const fs::path& path, uint64_t max_bytes,
                                    std::string_view what) {
  const std::string p = path.string();
  const std::string limit = "the limit of " + std::to_string(max_bytes) + " bytes";
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (st.type() == fs::file_type::not_found) {
    return Status::NotFound(p + ": " + std::string(what) + " does not exist");
  }
  if (ec) return Status::IoError(p + ": cannot stat " + std::string(what) + ": " + ec.message());
  if (fs::is_directory(st)) {
    return Status::InvalidArgument(p + ": is a directory, expected a " + std::string(what));
  }
  if (fs::is_regular_file(st)) {
    const uintmax_t size = fs::file_size(path, ec);
    if (!ec && size > max_bytes) {
      return Status::InvalidArgument(p + ": " + std::string(what) + " is " +
                                     std::to_string(size) + " bytes, more than " + limit);
    }
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IoError(p + ": cannot open " + std::string(what) + " for reading");
  // Pipes and devices have no size: read in pieces and stop one byte past the limit.
  std::string text;
  char buf[1 << 16];
  while (in) {
    in.read(buf, sizeof(buf));
    text.append(buf, static_cast<size_t>(in.gcount()));
    if (text.size() > max_bytes) {
      return Status::InvalidArgument(p + ": " + std::string(what) + " is more than " + limit);
    }
  }
  if (in.bad()) return Status::IoError(p + ": reading " + std::string(what) + " failed");
  return text;
}

}  // namespace dsv4
