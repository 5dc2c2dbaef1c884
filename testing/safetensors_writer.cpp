#include "testing/safetensors_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>
#include <system_error>
#include <vector>

#include "checkpoint/checkpoint_files.h"
#include "checkpoint/safetensors.h"

namespace dsv4::fixtures {
using checkpoint::OwnedTensor;
using checkpoint::ShapeToString;

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Bytes = std::span<const std::byte>;

// (Built with += : GCC 12 warns falsely (-Wrestrict) on "literal" + std::string temporaries.)
std::string Quoted(std::string_view s) {
  std::string q = "'";
  q.append(s);
  q += '\'';
  return q;
}
std::string ErrnoMessage(int err) { return std::generic_category().message(err); }

Bytes AsBytes(std::string_view s) { return std::as_bytes(std::span<const char>(s)); }

// numel * dtype size of `t`, or InvalidArgument naming it (negative dims, overflow, or data of
// the wrong size).
Result<uint64_t> CheckedDataSize(const OwnedTensor& t) {
  int64_t numel = 1;
  for (int64_t d : t.shape) {
    if (d < 0 || __builtin_mul_overflow(numel, d, &numel)) {
      return Status::InvalidArgument("tensor " + Quoted(t.name) + ": invalid shape " +
                                     ShapeToString(t.shape));
    }
  }
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(static_cast<uint64_t>(numel), DTypeSize(t.dtype), &bytes) ||
      t.data.size() != bytes) {
    return Status::InvalidArgument(
        "tensor " + Quoted(t.name) + ": data is " + std::to_string(t.data.size()) +
        " bytes, expected " + std::to_string(bytes) + " (dtype " + std::string(DTypeName(t.dtype)) +
        " shape " + ShapeToString(t.shape) + ")");
  }
  return bytes;
}

// The JSON header for `tensors` packed in order from offset 0, padded with spaces to a multiple
// of 8 bytes so the data section starts 8-aligned in the file.
Result<std::string> BuildHeader(std::span<const OwnedTensor* const> tensors,
                                const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  std::set<std::string_view> names;
  uint64_t offset = 0;
  for (const OwnedTensor* t : tensors) {
    DSV4_CHECK(t != nullptr);
    if (t->name == "__metadata__" || !names.insert(t->name).second) {
      return Status::InvalidArgument("tensor name " + Quoted(t->name) +
                                     " is reserved or repeated; names must be unique");
    }
    DSV4_ASSIGN_OR_RETURN(const uint64_t bytes, CheckedDataSize(*t));
    header[t->name] = {{"dtype", DTypeName(t->dtype)},
                       {"shape", t->shape},
                       {"data_offsets", json::array({offset, offset + bytes})}};
    offset += bytes;
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception& e) {
    return Status::InvalidArgument(std::string("tensor names and metadata must be UTF-8: ") +
                                   e.what());
  }
  text.resize((text.size() + 7) / 8 * 8, ' ');
  if (text.size() > checkpoint::kMaxSafetensorsHeaderBytes) {
    return Status::InvalidArgument("header of " + std::to_string(text.size()) +
                                   " bytes exceeds the reader limit of " +
                                   std::to_string(checkpoint::kMaxSafetensorsHeaderBytes));
  }
  return text;
}

Status WriteAll(int fd, Bytes bytes, const fs::path& path) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::IoError(path.string() + ": write failed: " + ErrnoMessage(errno));
    }
    bytes = bytes.subspan(static_cast<size_t>(n));
  }
  return Status::Ok();
}

// Creates (or truncates) `path`, writes `pieces` back to back and fsyncs it.
Status WriteFileSynced(const fs::path& path, std::span<const Bytes> pieces) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IoError(path.string() + ": cannot create: " + ErrnoMessage(errno));
  Status status;
  for (Bytes piece : pieces) {
    status = WriteAll(fd, piece, path);
    if (!status.ok()) break;
  }
  if (status.ok() && ::fsync(fd) != 0) {
    status = Status::IoError(path.string() + ": fsync failed: " + ErrnoMessage(errno));
  }
  if (::close(fd) != 0 && status.ok()) {
    status = Status::IoError(path.string() + ": close failed: " + ErrnoMessage(errno));
  }
  return status;
}

// Files written under temp names, renamed to their final names only by Commit. Whatever has not
// been committed when this goes out of scope is removed, so callers can return on any error
// without leaving partial output behind.
class PendingFiles {
 public:
  PendingFiles() = default;
  PendingFiles(const PendingFiles&) = delete;
  PendingFiles& operator=(const PendingFiles&) = delete;
  ~PendingFiles() {
    if (committed_) return;
    std::error_code ec;
    for (size_t i = 0; i < staged_.size(); ++i) {
      fs::remove(i < num_renamed_ ? staged_[i].final_path : staged_[i].temp_path, ec);
    }
  }

  // Writes `pieces` to "<final_path>.tmp.<pid>".
  Status Stage(const fs::path& final_path, std::span<const Bytes> pieces) {
    DSV4_CHECK(num_renamed_ == 0);
    fs::path temp = final_path;
    temp += ".tmp." + std::to_string(::getpid());
    staged_.push_back({temp, final_path});  // recorded first: a failed write is cleaned up too
    return WriteFileSynced(temp, pieces);
  }

  // Renames every staged file over its final name, in staging order (so a checkpoint index,
  // staged last, appears only once its shards exist).
  Status Commit() {
    for (; num_renamed_ < staged_.size(); ++num_renamed_) {
      const File& f = staged_[num_renamed_];
      if (std::rename(f.temp_path.c_str(), f.final_path.c_str()) != 0) {
        return Status::IoError(f.final_path.string() + ": cannot rename " + f.temp_path.string() +
                               " to it: " + ErrnoMessage(errno));
      }
    }
    committed_ = true;
    SyncParentDirs();
    return Status::Ok();
  }

 private:
  struct File {
    fs::path temp_path;
    fs::path final_path;
  };

  // Makes the renames durable; best effort, the data itself is already fsynced.
  void SyncParentDirs() const {
    std::set<fs::path> dirs;
    for (const File& f : staged_) dirs.insert(f.final_path.parent_path());
    for (const fs::path& dir : dirs) {
      const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (fd < 0) continue;
      (void)::fsync(fd);
      ::close(fd);
    }
  }

  std::vector<File> staged_;
  size_t num_renamed_ = 0;
  bool committed_ = false;
};

Status StageSafetensors(PendingFiles& pending, const fs::path& path,
                        std::span<const OwnedTensor* const> tensors,
                        const std::map<std::string, std::string>& metadata) {
  Result<std::string> built = BuildHeader(tensors, metadata);
  if (!built.ok()) return built.status().WithContext("writing " + path.string());
  const std::string& header = built.value();
  std::array<std::byte, 8> length{};
  for (size_t i = 0; i < 8; ++i) length[i] = std::byte((header.size() >> (8 * i)) & 0xFF);
  std::vector<Bytes> pieces = {length, AsBytes(header)};
  for (const OwnedTensor* t : tensors) pieces.push_back(t->data);
  return pending.Stage(path, pieces);  // its errors name the temp path
}

// shard_of[i] for tensor i: contiguous runs, each shard non-empty, shard s ending at the first
// tensor whose cumulative bytes reach (s + 1) / num_shards of the total.
std::vector<int> AssignShards(std::span<const OwnedTensor> tensors, int num_shards) {
  const size_t n = tensors.size();
  unsigned __int128 total = 0;
  for (const OwnedTensor& t : tensors) total += t.data.size();
  std::vector<int> shard_of(n);
  unsigned __int128 cumulative = 0;
  int shard = 0;
  for (size_t i = 0; i < n; ++i) {
    shard_of[i] = shard;
    cumulative += tensors[i].data.size();
    if (shard == num_shards - 1) continue;
    const size_t tensors_left = n - i - 1;
    const size_t shards_left = static_cast<size_t>(num_shards - 1 - shard);
    const bool reached = cumulative * num_shards >= total * static_cast<unsigned>(shard + 1);
    if (tensors_left == shards_left || (reached && tensors_left >= shards_left)) ++shard;
  }
  return shard_of;
}

std::string ShardFileName(int shard, int num_shards) {
  char name[64];
  std::snprintf(name, sizeof(name), "model-%05d-of-%05d.safetensors", shard + 1, num_shards);
  return name;
}

}  // namespace

Status WriteSafetensors(const fs::path& path, std::span<const OwnedTensor* const> tensors,
                        const std::map<std::string, std::string>& metadata) {
  PendingFiles pending;
  DSV4_RETURN_IF_ERROR(StageSafetensors(pending, path, tensors, metadata));
  return pending.Commit();
}

Status WriteShardedCheckpoint(const fs::path& dir, std::span<const OwnedTensor> tensors,
                              int num_shards) {
  if (num_shards < 1) {
    return Status::InvalidArgument("num_shards must be >= 1, got " + std::to_string(num_shards));
  }
  if (tensors.empty()) return Status::InvalidArgument("no tensors to write to " + dir.string());
  num_shards = static_cast<int>(std::min<size_t>(num_shards, tensors.size()));
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::IoError(dir.string() + ": cannot create directory: " + ec.message());

  const std::vector<int> shard_of = AssignShards(tensors, num_shards);
  std::vector<std::vector<const OwnedTensor*>> shards(num_shards);
  json weight_map = json::object();
  uint64_t total_size = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const OwnedTensor& t = tensors[i];
    if (weight_map.contains(t.name)) {
      return Status::InvalidArgument("tensor name " + Quoted(t.name) + " is repeated");
    }
    weight_map[t.name] = ShardFileName(shard_of[i], num_shards);
    shards[shard_of[i]].push_back(&t);
    total_size += t.data.size();
  }

  PendingFiles pending;
  for (int s = 0; s < num_shards; ++s) {
    DSV4_RETURN_IF_ERROR(StageSafetensors(pending, dir / ShardFileName(s, num_shards), shards[s],
                                          {{"format", "pt"}}));
  }
  const json index = {{"metadata", {{"total_size", total_size}}}, {"weight_map", weight_map}};
  std::string text;
  try {
    text = index.dump(2) + "\n";
  } catch (const json::exception& e) {
    return Status::InvalidArgument(std::string("tensor names must be UTF-8: ") + e.what());
  }
  const fs::path index_path = dir / checkpoint::kSafetensorsIndexName;
  const Bytes index_bytes = AsBytes(text);
  DSV4_RETURN_IF_ERROR(pending.Stage(index_path, {&index_bytes, 1}));
  return pending.Commit();
}

}  // namespace dsv4::fixtures
