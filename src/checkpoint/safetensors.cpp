#include "checkpoint/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <system_error>
#include <tuple>
#include <utility>

#include "core/json_nesting.h"
#include "core/large_buffer.h"

namespace dsv4::checkpoint {
namespace {

using nlohmann::json;

constexpr std::string_view kMetadataKey = "__metadata__";

// (Built with += : GCC 12 warns falsely (-Wrestrict) on "literal" + std::string temporaries.)
std::string Quoted(std::string_view s) {
  std::string q = "'";
  q.append(s);
  q += '\'';
  return q;
}

constexpr size_t kMaxSnippetChars = 80;
constexpr int kMaxSnippetDepth = 4;

// Appends a rendering of `j` to `out`, stopping soon after kMaxSnippetChars. Hand-written
// because json::dump recurses without limit: a header of a million nested '[' (valid JSON,
// which nlohmann parses iteratively) would overflow the stack.
void AppendSnippet(const json& j, int depth, std::string& out) {
  if (!j.is_structured()) {
    out += j.dump(-1, ' ', false, json::error_handler_t::replace);
    return;
  }
  const bool is_array = j.is_array();
  out += is_array ? '[' : '{';
  if (depth >= kMaxSnippetDepth && !j.empty()) out += "...";
  bool first = true;
  for (auto it = j.begin(); it != j.end() && depth < kMaxSnippetDepth; ++it) {
    if (out.size() > kMaxSnippetChars) {
      out += ",...";
      break;
    }
    if (!first) out += ',';
    first = false;
    if (!is_array) out += json(it.key()).dump(-1, ' ', false, json::error_handler_t::replace) + ":";
    AppendSnippet(*it, depth + 1, out);
  }
  out += is_array ? ']' : '}';
}

// A short rendering of a JSON value for messages; headers are untrusted, so cap its size.
std::string Snippet(const json& j) {
  std::string s;
  AppendSnippet(j, 0, s);
  if (s.size() > kMaxSnippetChars) s = s.substr(0, kMaxSnippetChars) + "...";
  return s;
}

std::string SupportedDTypeNames() {
  std::string s;  // kBool is the last DType
  for (int i = 0; i <= static_cast<int>(DType::kBool); ++i) {
    if (i) s += ", ";
    s += DTypeName(static_cast<DType>(i));
  }
  return s;
}

// A JSON integer >= 0, or nullopt (negative, float, not a number). nlohmann stores
// non-negative literals as unsigned and negative ones as signed.
std::optional<uint64_t> AsUnsigned(const json& j) {
  if (j.is_number_unsigned()) return j.get<uint64_t>();
  if (!j.is_number_integer() || j.get<int64_t>() < 0) return std::nullopt;
  return static_cast<uint64_t>(j.get<int64_t>());
}

// Messages read "<file>: tensor 'name': <problem>".
class EntryErrors {
 public:
  EntryErrors(std::string_view file, std::string_view tensor)
      : prefix_(std::string(file) + ": tensor " + Quoted(tensor) + ": ") {}
  Status operator()(std::string_view problem) const {
    return Status::DataLoss(prefix_ + std::string(problem));
  }

 private:
  std::string prefix_;
};

Result<DType> ParseEntryDType(const json& entry, const EntryErrors& error) {
  auto it = entry.find("dtype");
  if (it == entry.end()) return error("missing \"dtype\"");
  if (!it->is_string()) return error("\"dtype\" must be a string, got " + Snippet(*it));
  const std::string& name = it->get_ref<const std::string&>();
  std::optional<DType> dtype = ParseDType(name);
  if (!dtype) {
    return error("unknown dtype " + Quoted(name) + " (expected one of " + SupportedDTypeNames() +
                 ")");
  }
  return *dtype;
}

Result<std::vector<int64_t>> ParseEntryShape(const json& entry, const EntryErrors& error) {
  auto it = entry.find("shape");
  if (it == entry.end()) return error("missing \"shape\"");
  if (!it->is_array()) return error("\"shape\" must be an array, got " + Snippet(*it));
  std::vector<int64_t> shape;
  shape.reserve(it->size());
  for (const json& dim : *it) {
    if (dim.is_number_integer() && !dim.is_number_unsigned()) {
      const int64_t d = dim.get<int64_t>();
      if (d < 0) return error("negative dim " + std::to_string(d) + " in shape " + Snippet(*it));
    }
    std::optional<uint64_t> d = AsUnsigned(dim);
    if (!d) return error("shape dims must be non-negative integers, got " + Snippet(*it));
    if (*d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return error("dim " + std::to_string(*d) + " in shape " + Snippet(*it) +
                   " is larger than int64");
    }
    shape.push_back(static_cast<int64_t>(*d));
  }
  return shape;
}

// Bytes the tensor must occupy. The running product must not overflow even when a later dim
// is 0 (as in the reference): the rest of the engine multiplies dims naively.
Result<uint64_t> TensorBytes(DType dtype, std::span<const int64_t> shape,
                             const EntryErrors& error) {
  int64_t numel = 1;
  for (int64_t d : shape) {
    if (__builtin_mul_overflow(numel, d, &numel)) {
      return error("element count of shape " + ShapeToString(shape) + " overflows int64");
    }
  }
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(static_cast<uint64_t>(numel), DTypeSize(dtype), &bytes)) {
    return error("byte size of shape " + ShapeToString(shape) + " overflows uint64");
  }
  return bytes;
}

Result<TensorInfo> ParseEntry(const std::string& name, const json& entry, uint64_t data_size,
                              std::string_view file) {
  const EntryErrors error(file, name);
  if (!entry.is_object()) {
    return error("entry must be an object with dtype, shape and data_offsets, got " +
                 Snippet(entry));
  }
  TensorInfo info;
  info.name = name;
  DSV4_ASSIGN_OR_RETURN(info.dtype, ParseEntryDType(entry, error));
  DSV4_ASSIGN_OR_RETURN(info.shape, ParseEntryShape(entry, error));
  DSV4_ASSIGN_OR_RETURN(const uint64_t bytes, TensorBytes(info.dtype, info.shape, error));

  auto it = entry.find("data_offsets");
  if (it == entry.end()) return error("missing \"data_offsets\"");
  std::optional<uint64_t> begin, end;
  if (it->is_array() && it->size() == 2) {
    begin = AsUnsigned((*it)[0]);
    end = AsUnsigned((*it)[1]);
  }
  if (!begin || !end || *begin > *end) {
    return error("\"data_offsets\" must be two ascending non-negative integers [begin, end], got " +
                 Snippet(*it));
  }
  info.begin = *begin;
  info.end = *end;
  if (info.end > data_size) {
    return error("data_offsets " + Snippet(*it) + " end " + std::to_string(info.end) +
                 " is past the end of the data section (" + std::to_string(data_size) + " bytes)");
  }
  if (info.end - info.begin != bytes) {
    return error("data_offsets " + Snippet(*it) + " span " + std::to_string(info.end - info.begin) +
                 " bytes but dtype " + std::string(DTypeName(info.dtype)) + " shape " +
                 ShapeToString(info.shape) + " needs " + std::to_string(bytes) + " bytes");
  }
  return info;
}

Result<std::map<std::string, std::string>> ParseMetadata(const json& j, std::string_view file) {
  const std::string where = std::string(file) + ": \"__metadata__\" ";
  if (!j.is_object()) {
    return Status::DataLoss(where + "must be an object of strings, got " + Snippet(j));
  }
  std::map<std::string, std::string> metadata;
  for (const auto& [key, value] : j.items()) {
    if (!value.is_string()) {
      return Status::DataLoss(where + "value of " + Quoted(key) + " must be a string, got " +
                              Snippet(value));
    }
    metadata.emplace(key, value.get<std::string>());
  }
  return metadata;
}

std::string ByteRange(uint64_t begin, uint64_t end) {
  std::string r = "[";
  r += std::to_string(begin);
  r += ", ";
  r += std::to_string(end);
  r += ")";
  return r;
}

// The reference format requires the tensors to tile the data section exactly: sorted by
// offsets, each one starts where the previous ended and the last ends at data_size.
Status CheckTiling(const std::vector<TensorInfo>& tensors, uint64_t data_size,
                   std::string_view file) {
  std::vector<const TensorInfo*> order;
  order.reserve(tensors.size());
  for (const TensorInfo& t : tensors) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return std::tie(a->begin, a->end, a->name) < std::tie(b->begin, b->end, b->name);
  });
  const std::string prefix = std::string(file) + ": ";
  uint64_t covered = 0;
  const TensorInfo* prev = nullptr;
  for (const TensorInfo* t : order) {
    if (t->begin < covered) {
      return Status::DataLoss(prefix + "tensors " + Quoted(prev->name) + " (bytes " +
                              ByteRange(prev->begin, prev->end) + ") and " + Quoted(t->name) +
                              " (bytes " + ByteRange(t->begin, t->end) +
                              ") overlap in the data section");
    }
    if (t->begin > covered) {
      return Status::DataLoss(prefix + "hole in the data section: bytes " +
                              ByteRange(covered, t->begin) + " belong to no tensor (" +
                              (prev ? "after " + Quoted(prev->name) + ", " : "") + "before " +
                              Quoted(t->name) + "); safetensors allows no unindexed bytes");
    }
    covered = t->end;
    prev = t;
  }
  if (covered != data_size) {
    return Status::DataLoss(prefix + "hole in the data section: tensors cover " +
                            std::to_string(covered) + " bytes but the data section is " +
                            std::to_string(data_size) + " bytes (bytes " +
                            ByteRange(covered, data_size) + " belong to no tensor)");
  }
  return Status::Ok();
}

Result<SafetensorsHeader> ParseHeaderJson(const json& root, uint64_t data_size,
                                          std::string_view file) {
  if (!root.is_object()) {
    return Status::DataLoss(std::string(file) + ": header must be a JSON object, got " +
                            std::string(root.type_name()));
  }
  SafetensorsHeader header;
  header.tensors.reserve(root.size());
  // nlohmann::json objects iterate in sorted key order, so tensors come out sorted by name.
  for (const auto& [name, entry] : root.items()) {
    if (name == kMetadataKey) {
      DSV4_ASSIGN_OR_RETURN(header.metadata, ParseMetadata(entry, file));
      continue;
    }
    DSV4_ASSIGN_OR_RETURN(TensorInfo info, ParseEntry(name, entry, data_size, file));
    header.tensors.push_back(std::move(info));
  }
  DSV4_RETURN_IF_ERROR(CheckTiling(header.tensors, data_size, file));
  return header;
}

// Unmaps on scope exit unless released; keeps Open's error paths leak-free.
class MappingGuard {
 public:
  MappingGuard(void* addr, size_t size) : addr_(addr), size_(size) {}
  ~MappingGuard() {
    if (addr_ != nullptr) ::munmap(addr_, size_);
  }
  MappingGuard(const MappingGuard&) = delete;
  MappingGuard& operator=(const MappingGuard&) = delete;
  void* release() { return std::exchange(addr_, nullptr); }

 private:
  void* addr_;
  size_t size_;
};

std::string ErrnoMessage(int err) { return std::generic_category().message(err); }

// The file mapped read-only at a 2 MiB-aligned address and marked MADV_HUGEPAGE: the tensors
// the models use in place (FP8 linears, the BF16 head) are streamed every step, and a page
// cache read in large folios (as the kernel reads a file not yet cached into such a mapping)
// then maps in 2 MiB pages instead of 4 KiB ones (core/large_buffer.h). Falls back to an
// ordinary mapping; MAP_FAILED when that fails too (errno set).
void* MapAligned(int fd, uint64_t size) {
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  const size_t span = (static_cast<size_t>(size) + page - 1) / page * page;
  void* reserve = ::mmap(nullptr, span + kHugePageBytes, PROT_NONE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (reserve != MAP_FAILED) {
    const uintptr_t start = reinterpret_cast<uintptr_t>(reserve);
    const uintptr_t aligned = (start + kHugePageBytes - 1) & ~uintptr_t{kHugePageBytes - 1};
    void* addr = ::mmap(reinterpret_cast<void*>(aligned), span, PROT_READ, MAP_PRIVATE | MAP_FIXED,
                        fd, 0);
    if (addr != MAP_FAILED) {
      // The reservation's ends around the mapping.
      if (aligned > start) ::munmap(reserve, aligned - start);
      const uintptr_t end = aligned + span, reserve_end = start + span + kHugePageBytes;
      if (reserve_end > end) ::munmap(reinterpret_cast<void*>(end), reserve_end - end);
#ifdef MADV_HUGEPAGE
      ::madvise(addr, span, MADV_HUGEPAGE);  // a kernel without file THP refuses: small pages
#endif
      return addr;
    }
    ::munmap(reserve, span + kHugePageBytes);
  }
  return ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
}

// Opens `path` read-only and maps it whole; returns the mapping and its size.
Result<std::pair<void*, uint64_t>> MapFile(const std::filesystem::path& path) {
  const std::string p = path.string();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) return Status::NotFound(p + ": no such file");
    return Status::IoError(p + ": cannot open: " + ErrnoMessage(err));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return Status::IoError(p + ": fstat failed: " + ErrnoMessage(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::IoError(p + ": not a regular file");
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    return Status::DataLoss(p + ": file is " + std::to_string(size) +
                            " bytes, shorter than the 8-byte header length field");
  }
  void* addr = MapAligned(fd, size);
  const int err = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (addr == MAP_FAILED) return Status::IoError(p + ": mmap failed: " + ErrnoMessage(err));
  return std::make_pair(addr, size);
}

}  // namespace

Result<SafetensorsHeader> ParseSafetensorsHeader(std::string_view header_json, uint64_t data_size,
                                                 std::string_view file_label) {
  if (Status s = CheckJsonNesting(header_json, kDefaultMaxJsonDepth,
                                  std::string(file_label) + " (safetensors header)");
      !s.ok()) {
    return Status::DataLoss(s.message());
  }
  try {
    json root;
    try {
      root = json::parse(header_json.begin(), header_json.end());
    } catch (const json::parse_error& e) {
      return Status::DataLoss(std::string(file_label) + ": header is not valid JSON: " + e.what());
    }
    return ParseHeaderJson(root, data_size, file_label);
  } catch (const json::exception& e) {
    // Not expected (types are checked before every access); the boundary guard of the
    // no-exceptions rule.
    return Status::DataLoss(std::string(file_label) + ": malformed header: " + e.what());
  }
}

Result<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::filesystem::path& path) {
  DSV4_ASSIGN_OR_RETURN(auto mapped, MapFile(path));
  auto [addr, size] = mapped;
  MappingGuard guard(addr, size);
  const auto* bytes = static_cast<const unsigned char*>(addr);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];  // little-endian

  const std::string p = path.string();
  if (header_len > kMaxSafetensorsHeaderBytes) {
    return Status::DataLoss(p + ": header length " + std::to_string(header_len) +
                            " exceeds the limit of " + std::to_string(kMaxSafetensorsHeaderBytes) +
                            " bytes (corrupt length field?)");
  }
  if (header_len > size - 8) {
    return Status::DataLoss(p + ": header length " + std::to_string(header_len) +
                            " runs past the end of the file (file is " + std::to_string(size) +
                            " bytes, at most " + std::to_string(size - 8) +
                            " header bytes; truncated?)");
  }
  const std::string_view header_json(reinterpret_cast<const char*>(bytes) + 8, header_len);
  const uint64_t data_offset = 8 + header_len;
  DSV4_ASSIGN_OR_RETURN(SafetensorsHeader header,
                        ParseSafetensorsHeader(header_json, size - data_offset, p));
  guard.release();
  return std::unique_ptr<SafetensorsFile>(new SafetensorsFile(
      path, static_cast<const std::byte*>(addr), size, data_offset, std::move(header)));
}

SafetensorsFile::SafetensorsFile(std::filesystem::path path, const std::byte* map,
                                 uint64_t file_size, uint64_t data_offset, SafetensorsHeader header)
    : path_(std::move(path)),
      map_(map),
      file_size_(file_size),
      data_offset_(data_offset),
      header_(std::move(header)) {}

SafetensorsFile::~SafetensorsFile() { ::munmap(const_cast<std::byte*>(map_), file_size_); }

const TensorInfo* SafetensorsFile::Find(std::string_view name) const {
  const auto& t = header_.tensors;
  auto it = std::lower_bound(t.begin(), t.end(), name,
                             [](const TensorInfo& a, std::string_view n) { return a.name < n; });
  return (it != t.end() && it->name == name) ? &*it : nullptr;
}

TensorView SafetensorsFile::View(const TensorInfo& info) const {
  const std::less<const TensorInfo*> less;
  const auto& t = header_.tensors;
  DSV4_CHECK_MSG(!less(&info, t.data()) && less(&info, t.data() + t.size()),
                 "TensorInfo '" + info.name + "' does not belong to " + path_.string());
  const std::byte* data = map_ + data_offset_ + info.begin;
  return TensorView{.name = info.name,
                    .dtype = info.dtype,
                    .shape = info.shape,
                    .bytes = std::span<const std::byte>(data, info.end - info.begin)};
}

}  // namespace dsv4::checkpoint
