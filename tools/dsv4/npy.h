// Writes NumPy .npy files (format 1.0, little-endian float32, C order) atomically and as the
// data arrives: the header and rows go to a temp file beside the target, renamed into place by
// Finish, so a failure never leaves a partial file and the caller never holds the whole array.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"

namespace dsv4::cli {

class NpyF32Writer {
 public:
  // Starts `path` with shape `shape`; IoError naming it when the temp file cannot be created.
  static Result<std::unique_ptr<NpyF32Writer>> Create(const std::string& path,
                                                      const std::vector<int64_t>& shape);
  // Removes the temp file unless Finish succeeded.
  ~NpyF32Writer();
  NpyF32Writer(const NpyF32Writer&) = delete;
  NpyF32Writer& operator=(const NpyF32Writer&) = delete;

  // Appends `count` values in C order; IoError on a failed write, OutOfRange past the shape.
  Status Append(const float* data, int64_t count);
  // Checks that every value of the shape was appended (OutOfRange otherwise) and moves the
  // file into place (IoError on failure).
  Status Finish();

 private:
  NpyF32Writer(std::string path, std::string tmp, FILE* file, int64_t count)
      : path_(std::move(path)), tmp_(std::move(tmp)), file_(file), count_(count) {}

  std::string path_, tmp_;
  FILE* file_;         // null once closed
  int64_t count_;      // values the shape holds
  int64_t written_ = 0;
  bool done_ = false;
};

}  // namespace dsv4::cli
