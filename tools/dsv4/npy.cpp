#include "npy.h"

#include <unistd.h>

#include <filesystem>

namespace dsv4::cli {

Result<std::unique_ptr<NpyF32Writer>> NpyF32Writer::Create(const std::string& path,
                                                           const std::vector<int64_t>& shape) {
  std::string dims;
  int64_t count = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    dims += (i ? ", " : "") + std::to_string(shape[i]);
    count *= shape[i];
  }
  if (shape.size() == 1) dims += ",";  // numpy's 1-tuple
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  // magic(6) + version(2) + len(2) + header, padded with spaces and a newline to 64 bytes.
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) return Status::IoError(path + ": cannot create output file");
  std::unique_ptr<NpyF32Writer> w(new NpyF32Writer(path, std::move(tmp), f, count));
  const unsigned char magic[8] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
  const uint16_t len = static_cast<uint16_t>(header.size());
  if (std::fwrite(magic, 1, 8, f) != 8 || std::fwrite(&len, 2, 1, f) != 1 ||
      std::fwrite(header.data(), 1, header.size(), f) != header.size()) {
    return Status::IoError(path + ": write failed");
  }
  return w;
}

NpyF32Writer::~NpyF32Writer() {
  if (file_) std::fclose(file_);
  std::error_code ec;
  if (!done_) std::filesystem::remove(tmp_, ec);
}

Status NpyF32Writer::Append(const float* data, int64_t count) {
  if (written_ + count > count_) {
    return Status::OutOfRange(path_ + ": " + std::to_string(written_ + count) +
                              " values written, the shape holds " + std::to_string(count_));
  }
  if (std::fwrite(data, sizeof(float), static_cast<size_t>(count), file_) !=
      static_cast<size_t>(count)) {
    return Status::IoError(path_ + ": write failed");
  }
  written_ += count;
  return Status::Ok();
}

Status NpyF32Writer::Finish() {
  if (written_ != count_) {
    return Status::OutOfRange(path_ + ": " + std::to_string(written_) +
                              " values written, the shape holds " + std::to_string(count_));
  }
  const bool closed = std::fclose(file_) == 0;
  file_ = nullptr;
  std::error_code ec;
  if (closed) std::filesystem::rename(tmp_, path_, ec);
  if (!closed || ec) return Status::IoError(path_ + ": write failed");
  done_ = true;
  return Status::Ok();
}

}  // namespace dsv4::cli
