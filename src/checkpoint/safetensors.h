// Reading safetensors files (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length N, N bytes of JSON header, then the data section.
//
// The header maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]} with offsets
// relative to the data section, plus an optional "__metadata__" string→string map. We accept
// exactly what the reference library accepts: tensors must tile the data section with no
// overlaps, holes or trailing bytes, so every byte of the file is accounted for.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "checkpoint/tensor.h"

namespace dsv4::checkpoint {

// One tensor entry of a safetensors header, validated against the data section.
struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;  // every dim >= 0; the element count fits in int64
  uint64_t begin = 0;          // byte offsets relative to the data section, begin <= end
  uint64_t end = 0;            // end - begin == NumElements(shape) * DTypeSize(dtype)
};

struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;  // sorted by name
  std::map<std::string, std::string> metadata;
};

// The reference implementation refuses headers larger than this (a guard against allocating
// gigabytes for a corrupt length field); so do we.
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

// Parses and validates the JSON header. `header_json` is the N header bytes (what follows the
// 8-byte length), `data_size` the size of the data section that follows them, `file_label`
// the name used in messages (usually the path). Returns DataLoss naming the file, the tensor
// and the expected and actual value for any malformed or inconsistent header, including one
// nested deeper than kDefaultMaxJsonDepth levels (checked before the parser sees it; a real
// header nests 3). A pure function: safe on any input (fuzzed) and thread-safe.
Result<SafetensorsHeader> ParseSafetensorsHeader(std::string_view header_json, uint64_t data_size,
                                                 std::string_view file_label);

// A safetensors file mapped read-only into memory. Views point straight into the mapping
// (zero-copy) and stay valid for the lifetime of this object. Immutable after Open, so it is
// safe to read from many threads. Truncating the file on disk while it is mapped makes later
// reads of the lost pages fault (SIGBUS): checkpoints are expected to be left alone while open.
class SafetensorsFile {
 public:
  // Opens, maps and validates `path`. NotFound if it does not exist, IoError if the OS refuses
  // (open, fstat, mmap, not a regular file), DataLoss if the contents are malformed; every
  // message names the path.
  static Result<std::unique_ptr<SafetensorsFile>> Open(const std::filesystem::path& path);

  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  uint64_t file_size() const { return file_size_; }
  // Tensors sorted by name.
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }

  // The tensor called `name`, or nullptr. The pointer lives as long as this object.
  const TensorInfo* Find(std::string_view name) const;
  // A view of `info`'s bytes; `info` must come from tensors() or Find() of this file (checked).
  TensorView View(const TensorInfo& info) const;

 private:
  SafetensorsFile(std::filesystem::path path, const std::byte* map, uint64_t file_size,
                  uint64_t data_offset, SafetensorsHeader header);

  std::filesystem::path path_;
  const std::byte* map_;  // the whole file, PROT_READ, MAP_PRIVATE
  uint64_t file_size_;
  uint64_t data_offset_;  // 8 + header length: where the data section starts in the file
  SafetensorsHeader header_;
};

}  // namespace dsv4::checkpoint
