#include "checkpoint/checkpoint_files.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <system_error>
#include <utility>

#include "checkpoint/json_file.h"
#include "core/file_read.h"

namespace dsv4::checkpoint {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// (Built with += : GCC 12 warns falsely (-Wrestrict) on "literal" + std::string temporaries.)
std::string Quoted(std::string_view s) {
  std::string q = "'";
  q.append(s);
  q += '\'';
  return q;
}

// A shard name from an untrusted index must stay inside the checkpoint folder.
bool IsSafeRelativePath(const std::string& name) {
  const fs::path p(name);
  if (name.empty() || p.is_absolute() || p.has_root_name() || p.has_root_directory()) return false;
  for (const fs::path& part : p) {
    if (part == "..") return false;
  }
  return true;
}

// Parses the "weight_map" of an index file: tensor name → shard file name.
Result<std::map<std::string, std::string>> ReadWeightMap(const fs::path& index_path) {
  DSV4_ASSIGN_OR_RETURN(const json root,
                        ReadJsonFile(index_path, kMaxIndexJsonBytes, "safetensors index"));
  const std::string where = index_path.string() + ": ";
  if (!root.is_object()) {
    return Status::DataLoss(where + "must be a JSON object, got " + std::string(root.type_name()));
  }
  auto it = root.find("weight_map");
  if (it == root.end()) return Status::DataLoss(where + "missing \"weight_map\"");
  if (!it->is_object()) {
    return Status::DataLoss(where + "\"weight_map\" must be an object, got " +
                            std::string(it->type_name()));
  }
  std::map<std::string, std::string> weight_map;
  for (const auto& [tensor, shard] : it->items()) {
    if (!shard.is_string()) {
      return Status::DataLoss(where + "weight_map entry for tensor " + Quoted(tensor) +
                              " must be a file name string, got " + std::string(shard.type_name()));
    }
    const std::string& name = shard.get_ref<const std::string&>();
    if (!IsSafeRelativePath(name)) {
      return Status::DataLoss(where + "weight_map entry for tensor " + Quoted(tensor) +
                              " names shard " + Quoted(name) +
                              ", which is not a file inside the checkpoint folder");
    }
    weight_map.emplace(tensor, name);
  }
  return weight_map;
}

// Finds a lone *.safetensors file when neither the index nor model.safetensors exists.
Result<fs::path> FindLoneSafetensors(const fs::path& dir) {
  std::vector<fs::path> found;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code type_ec;
    if (it->path().extension() == ".safetensors" && it->is_regular_file(type_ec)) {
      found.push_back(it->path());
    }
  }
  if (ec) return Status::IoError(dir.string() + ": cannot list directory: " + ec.message());
  if (found.size() == 1) return found.front();
  std::string msg = "no checkpoint in ";
  msg += dir.string() + ": looked for " + std::string(kSafetensorsIndexName) + ", " +
         std::string(kSingleSafetensorsName) + " or exactly one *.safetensors file";
  if (!found.empty()) {
    std::sort(found.begin(), found.end());
    msg += ", found " + std::to_string(found.size()) + " without an index:";
    for (const fs::path& p : found) {
      msg += ' ';
      msg += p.filename().string();
    }
  }
  return Status::NotFound(msg);
}

}  // namespace

CheckpointFiles::CheckpointFiles(fs::path dir, std::vector<std::unique_ptr<SafetensorsFile>> files,
                                 TensorMap tensors)
    : dir_(std::move(dir)), files_(std::move(files)), tensors_(std::move(tensors)) {}

namespace {

// Opens every shard named in `weight_map`. NotFound names the shard and one of its tensors.
Result<std::vector<std::unique_ptr<SafetensorsFile>>> OpenShards(
    const fs::path& dir, const fs::path& index_path,
    const std::map<std::string, std::string>& weight_map) {
  std::map<std::string, std::string> shard_to_tensor;  // sorted: files() in file-name order
  for (const auto& [tensor, shard] : weight_map) shard_to_tensor.emplace(shard, tensor);
  std::vector<std::unique_ptr<SafetensorsFile>> files;
  for (const auto& [shard, tensor] : shard_to_tensor) {
    const fs::path path = dir / shard;
    std::error_code ec;
    if (!fs::exists(path, ec)) {
      return Status::NotFound(path.string() + ": shard listed in " + index_path.string() +
                              " (for tensor " + Quoted(tensor) + ") does not exist");
    }
    DSV4_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(path));
    files.push_back(std::move(file));
  }
  return files;
}

}  // namespace

Result<std::unique_ptr<CheckpointFiles>> CheckpointFiles::Open(const fs::path& dir) {
  std::error_code ec;
  const fs::file_status st = fs::status(dir, ec);
  if (st.type() == fs::file_type::not_found) {
    return Status::NotFound("checkpoint directory " + dir.string() + " does not exist");
  }
  if (ec) return Status::IoError(dir.string() + ": cannot stat: " + ec.message());
  if (!fs::is_directory(st)) {
    return Status::InvalidArgument(dir.string() +
                                   " is not a directory (pass the checkpoint folder)");
  }

  std::vector<std::unique_ptr<SafetensorsFile>> files;
  std::map<std::string, std::string> weight_map;
  const fs::path index_path = dir / kSafetensorsIndexName;
  const bool indexed = fs::exists(index_path, ec);
  if (indexed) {
    DSV4_ASSIGN_OR_RETURN(weight_map, ReadWeightMap(index_path));
    DSV4_ASSIGN_OR_RETURN(files, OpenShards(dir, index_path, weight_map));
  } else {
    fs::path single = dir / kSingleSafetensorsName;
    if (!fs::exists(single, ec)) {
      DSV4_ASSIGN_OR_RETURN(single, FindLoneSafetensors(dir));
    }
    DSV4_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(single));
    files.push_back(std::move(file));
  }

  DSV4_ASSIGN_OR_RETURN(TensorMap tensors, BuildTensorMap(files));
  if (indexed) DSV4_RETURN_IF_ERROR(CheckAgainstIndex(tensors, weight_map, dir, index_path));
  return std::unique_ptr<CheckpointFiles>(
      new CheckpointFiles(dir, std::move(files), std::move(tensors)));
}

Result<CheckpointFiles::TensorMap> CheckpointFiles::BuildTensorMap(
    const std::vector<std::unique_ptr<SafetensorsFile>>& files) {
  TensorMap tensors;
  for (const auto& file : files) {
    for (const TensorInfo& info : file->tensors()) {
      auto [it, inserted] = tensors.emplace(info.name, Entry{file.get(), &info});
      if (!inserted) {
        return Status::DataLoss("tensor " + Quoted(info.name) + " is in both " +
                                it->second.file->path().string() + " and " + file->path().string());
      }
    }
  }
  return tensors;
}

Status CheckpointFiles::CheckAgainstIndex(const TensorMap& tensors,
                                          const std::map<std::string, std::string>& weight_map,
                                          const fs::path& dir, const fs::path& index_path) {
  for (const auto& [tensor, shard] : weight_map) {
    auto it = tensors.find(tensor);
    if (it == tensors.end() || it->second.file->path() != dir / shard) {
      return Status::NotFound(
          "tensor " + Quoted(tensor) + " listed in " + index_path.string() + " for shard " +
          (dir / shard).string() + " is not in that shard" +
          (it == tensors.end() ? "" : " (found in " + it->second.file->path().string() + ")"));
    }
  }
  for (const auto& [name, entry] : tensors) {
    if (!weight_map.contains(name)) {
      return Status::DataLoss("tensor " + Quoted(name) + " is in shard " +
                              entry.file->path().string() + " but not listed in " +
                              index_path.string());
    }
  }
  return Status::Ok();
}

std::vector<std::string> CheckpointFiles::names() const {
  std::vector<std::string> out;
  out.reserve(tensors_.size());
  for (const auto& [name, entry] : tensors_) out.push_back(name);
  return out;
}

bool CheckpointFiles::Has(std::string_view name) const { return tensors_.contains(name); }

Result<TensorView> CheckpointFiles::Get(std::string_view name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    return Status::NotFound("tensor " + Quoted(name) + " not found in " + dir_.string());
  }
  return it->second.file->View(*it->second.info);
}

std::string CheckpointFiles::FileOf(std::string_view name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? label() : it->second.file->path().string();
}

uint64_t CheckpointFiles::total_file_bytes() const {
  uint64_t total = 0;
  for (const auto& file : files_) total += file->file_size();
  return total;
}

}  // namespace dsv4::checkpoint
