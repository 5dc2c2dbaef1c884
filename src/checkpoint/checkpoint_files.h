// A checkpoint folder on disk as a TensorSource: either Hugging Face shards described by
// model.safetensors.index.json, or a single safetensors file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "checkpoint/safetensors.h"
#include "checkpoint/tensor.h"

namespace dsv4::checkpoint {

inline constexpr std::string_view kSafetensorsIndexName = "model.safetensors.index.json";
inline constexpr std::string_view kSingleSafetensorsName = "model.safetensors";

// All files of a checkpoint folder, mapped read-only. Immutable after Open; safe to read from
// many threads. Views returned by Get stay valid for the lifetime of this object.
class CheckpointFiles final : public TensorSource {
 public:
  // Opens `dir`, looking in this order for
  //   1. model.safetensors.index.json: {"metadata": {...}, "weight_map": {tensor: shard}};
  //      every shard it names is opened, and the index and the shards must agree exactly;
  //   2. model.safetensors;
  //   3. exactly one *.safetensors file.
  // NotFound when `dir`, the files or a listed tensor are missing; DataLoss when the index is
  // malformed, a shard holds a tensor the index does not list, or a tensor is in two shards;
  // errors from SafetensorsFile::Open otherwise. Messages name the file and the tensor.
  static Result<std::unique_ptr<CheckpointFiles>> Open(const std::filesystem::path& dir);

  // TensorSource.
  std::string label() const override { return dir_.string(); }
  std::vector<std::string> names() const override;
  bool Has(std::string_view name) const override;
  Result<TensorView> Get(std::string_view name) const override;
  using TensorSource::Get;
  // The path of the shard holding `name` (label() for an unknown name).
  std::string FileOf(std::string_view name) const override;

  // The opened files, index shards in file-name order.
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }
  // Sum of the sizes of files() (headers included), for `dsv4 inspect`.
  uint64_t total_file_bytes() const;

 private:
  struct Entry {
    const SafetensorsFile* file;
    const TensorInfo* info;
  };
  using TensorMap = std::map<std::string, Entry, std::less<>>;

  // Indexes every tensor of `files`; DataLoss naming both files if a name appears twice.
  static Result<TensorMap> BuildTensorMap(
      const std::vector<std::unique_ptr<SafetensorsFile>>& files);
  // The index and the shards must agree: every listed tensor is in its shard (NotFound) and
  // every shard tensor is listed (DataLoss).
  static Status CheckAgainstIndex(const TensorMap& tensors,
                                  const std::map<std::string, std::string>& weight_map,
                                  const std::filesystem::path& dir,
                                  const std::filesystem::path& index_path);

  CheckpointFiles(std::filesystem::path dir, std::vector<std::unique_ptr<SafetensorsFile>> files,
                  TensorMap tensors);

  std::filesystem::path dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  TensorMap tensors_;  // every tensor of every file; names are unique across files
};

}  // namespace dsv4::checkpoint
