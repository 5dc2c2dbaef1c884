#include "kv/snapshot_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <utility>
#include <filesystem>

namespace dsv4::kv {
namespace {

static_assert(std::endian::native == std::endian::little, "snapshot files are little-endian");

constexpr char kMagic[8] = {'D', 'S', 'V', '4', 'K', 'V', 'S', 'N'};
constexpr char kEndMagic[8] = {'D', 'S', 'V', '4', 'K', 'E', 'N', 'D'};
constexpr int64_t kHeaderBytes = 64;
constexpr int64_t kPageRecordBytes = 24;
constexpr int64_t kTrailerBytes = 16;

#pragma pack(push, 1)
struct Header {
  char magic[8];
  uint32_t version;
  uint32_t header_bytes;
  uint64_t fingerprint;
  uint64_t num_tokens;
  uint64_t token_hash;
  uint64_t state_bytes;
  uint64_t num_pages;
  uint64_t checksum;  // of the bytes above
};
struct PageRecord {
  uint16_t component;
  uint16_t reserved;
  uint32_t layer;
  uint64_t bytes;
  uint64_t checksum;
};
#pragma pack(pop)
static_assert(sizeof(Header) == kHeaderBytes && sizeof(PageRecord) == kPageRecordBytes);

constexpr uint64_t kP1 = 0x9E3779B185EBCA87ull;
constexpr uint64_t kP2 = 0xC2B2AE3D27D4EB4Full;
constexpr uint64_t kP3 = 0x165667B19E3779F9ull;

uint64_t Round(uint64_t acc, uint64_t word) {
  acc += word * kP2;
  acc = std::rotl(acc, 31);
  return acc * kP1;
}

uint64_t HeaderChecksum(const Header& h) {
  return Checksum64({reinterpret_cast<const uint8_t*>(&h), offsetof(Header, checksum)});
}

template <typename T>
std::span<const uint8_t> Bytes(const T* p, size_t n) {
  return {reinterpret_cast<const uint8_t*>(p), n * sizeof(T)};
}

std::string Errno() { return std::strerror(errno); }

// Sequential writes to one descriptor; the first failure sticks.
class FileWriter {
 public:
  explicit FileWriter(int fd) : fd_(fd) {}
  void Write(std::span<const uint8_t> bytes) {
    while (ok_ && !bytes.empty()) {
      const ssize_t n = ::write(fd_, bytes.data(), bytes.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        ok_ = false;
        error_ = Errno();
        return;
      }
      bytes = bytes.subspan(static_cast<size_t>(n));
    }
  }
  void WriteU64(uint64_t v) { Write(Bytes(&v, 1)); }
  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }

 private:
  int fd_;
  bool ok_ = true;
  std::string error_;
};

// Reads exactly bytes.size() bytes at the current offset; false on a short read or error.
bool ReadExact(int fd, std::span<uint8_t> bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::read(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes = bytes.subspan(static_cast<size_t>(n));
  }
  return true;
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

// Bytes of the draft section (version 2 on) holding `draft` bytes.
uint64_t DraftSectionBytes(uint32_t version, uint64_t draft) {
  return version >= 2 ? 8 + draft + 8 : 0;
}

// Opens `path` and checks its header. Leaves the offset after the header.
Result<Header> OpenAndReadHeader(const std::string& path, uint64_t expected_fingerprint, Fd* fd,
                                 int64_t* file_bytes) {
  struct stat st {};
  if (::fstat(fd->get(), &st) != 0) {
    return Status::IoError("cannot stat prefix snapshot " + path + ": " + Errno());
  }
  *file_bytes = static_cast<int64_t>(st.st_size);
  Header h{};
  if (*file_bytes < kHeaderBytes || !ReadExact(fd->get(), {reinterpret_cast<uint8_t*>(&h), sizeof h})) {
    return Status::DataLoss("prefix snapshot " + path + " is truncated: " +
                            std::to_string(*file_bytes) + " bytes, shorter than its " +
                            std::to_string(kHeaderBytes) + "-byte header");
  }
  if (std::memcmp(h.magic, kMagic, sizeof kMagic) != 0) {
    return Status::DataLoss("prefix snapshot " + path + " does not start with DSV4KVSN");
  }
  if (h.checksum != HeaderChecksum(h)) {
    return Status::DataLoss("prefix snapshot " + path + ": header checksum mismatch");
  }
  if (h.version < kOldestSnapshotFileVersion || h.version > kSnapshotFileVersion ||
      h.header_bytes != kHeaderBytes) {
    return Status::FailedPrecondition("prefix snapshot " + path + " has format version " +
                                      std::to_string(h.version) + ", this build reads " +
                                      std::to_string(kOldestSnapshotFileVersion) + " to " +
                                      std::to_string(kSnapshotFileVersion));
  }
  if (h.fingerprint != expected_fingerprint) {
    char got[17], want[17];
    std::snprintf(got, sizeof got, "%016llx", static_cast<unsigned long long>(h.fingerprint));
    std::snprintf(want, sizeof want, "%016llx",
                  static_cast<unsigned long long>(expected_fingerprint));
    return Status::FailedPrecondition("prefix snapshot " + path + " belongs to another model " +
                                      "(fingerprint " + got + ", this model's is " + want + ")");
  }
  // Sizes a corrupt header could make absurd are checked against the file before use.
  const uint64_t min_bytes = kHeaderBytes + h.num_tokens * 4 + 8 + h.state_bytes + 8 +
                             DraftSectionBytes(h.version, 0) + h.num_pages * kPageRecordBytes +
                             8 + kTrailerBytes;
  if (h.num_tokens > (uint64_t{1} << 40) || h.state_bytes > (uint64_t{1} << 40) ||
      h.num_pages > (uint64_t{1} << 32) || min_bytes > static_cast<uint64_t>(*file_bytes)) {
    return Status::DataLoss("prefix snapshot " + path + " is truncated: " +
                            std::to_string(*file_bytes) + " bytes, its header needs at least " +
                            std::to_string(min_bytes));
  }
  return h;
}

}  // namespace

int64_t SnapshotImage::total_bytes() const {
  int64_t n = static_cast<int64_t>(state.size() + draft.size());
  for (const Page& p : pages) n += static_cast<int64_t>(p.bytes.size());
  return n;
}

uint64_t Checksum64(std::span<const uint8_t> bytes, uint64_t seed) {
  uint64_t acc[4] = {seed + kP1 + kP2, seed + kP2, seed, seed - kP1};
  size_t i = 0;
  const size_t n = bytes.size();
  for (; i + 32 <= n; i += 32) {
    for (int l = 0; l < 4; ++l) {
      uint64_t w;
      std::memcpy(&w, bytes.data() + i + 8 * l, 8);
      acc[l] = Round(acc[l], w);
    }
  }
  uint64_t h = std::rotl(acc[0], 1) + std::rotl(acc[1], 7) + std::rotl(acc[2], 12) +
               std::rotl(acc[3], 18) + static_cast<uint64_t>(n);
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, bytes.data() + i, 8);
    h = std::rotl(h ^ Round(0, w), 27) * kP1 + kP3;
  }
  for (; i < n; ++i) h = std::rotl(h ^ (bytes[i] * kP3), 11) * kP1;
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  h *= kP3;
  h ^= h >> 32;
  return h;
}

uint64_t HashTokens(std::span<const int32_t> tokens) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (int32_t t : tokens) {
    h ^= static_cast<uint32_t>(t);
    h *= 0x100000001b3ull;
  }
  return h;
}

Status WriteSnapshotFile(const std::string& path, uint64_t model_fingerprint,
                         const SnapshotImage& image) {
  // The temporary's name is unique per process; a leftover one (killed mid-write) never has
  // the final suffix, so it is never indexed.
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (fd.get() < 0) return Status::IoError("cannot create " + tmp + ": " + Errno());
  auto fail = [&](const std::string& what) {
    ::close(fd.release());
    ::unlink(tmp.c_str());
    return Status::IoError("cannot write prefix snapshot " + path + ": " + what);
  };
  Header h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.version = kSnapshotFileVersion;
  h.header_bytes = kHeaderBytes;
  h.fingerprint = model_fingerprint;
  h.num_tokens = image.tokens.size();
  h.token_hash = HashTokens(image.tokens);
  h.state_bytes = image.state.size();
  h.num_pages = image.pages.size();
  h.checksum = HeaderChecksum(h);
  std::vector<PageRecord> table;
  table.reserve(image.pages.size());
  int64_t total = kHeaderBytes + static_cast<int64_t>(image.tokens.size()) * 4 + 8 +
                  static_cast<int64_t>(image.state.size()) + 8 +
                  static_cast<int64_t>(DraftSectionBytes(h.version, image.draft.size())) +
                  static_cast<int64_t>(image.pages.size()) * kPageRecordBytes + 8 + kTrailerBytes;
  for (const SnapshotImage::Page& p : image.pages) {
    table.push_back({p.component, 0, p.layer, p.bytes.size(), Checksum64(p.bytes)});
    total += static_cast<int64_t>(p.bytes.size());
  }
  FileWriter w(fd.get());
  w.Write(Bytes(&h, 1));
  const auto tokens = Bytes(image.tokens.data(), image.tokens.size());
  w.Write(tokens);
  w.WriteU64(Checksum64(tokens));
  w.Write(image.state);
  w.WriteU64(Checksum64(image.state));
  w.WriteU64(image.draft.size());
  w.Write(image.draft);
  w.WriteU64(Checksum64(image.draft));
  const auto table_bytes = Bytes(table.data(), table.size());
  w.Write(table_bytes);
  w.WriteU64(Checksum64(table_bytes));
  for (const SnapshotImage::Page& p : image.pages) w.Write(p.bytes);
  w.Write(Bytes(kEndMagic, sizeof kEndMagic));
  w.WriteU64(static_cast<uint64_t>(total));
  if (!w.ok()) return fail(w.error());
  if (::fsync(fd.get()) != 0) return fail("fsync: " + Errno());
  if (::close(fd.release()) != 0) {
    ::unlink(tmp.c_str());
    return Status::IoError("cannot write prefix snapshot " + path + ": close: " + Errno());
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string e = Errno();
    ::unlink(tmp.c_str());
    return Status::IoError("cannot rename " + tmp + " to " + path + ": " + e);
  }
  // The rename itself is durable once the folder is synced.
  const std::string dir = std::filesystem::path(path).parent_path().string();
  Fd dfd(::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd.get() >= 0) ::fsync(dfd.get());
  return Status::Ok();
}

Result<SnapshotFileHeader> ReadSnapshotHeader(const std::string& path,
                                              uint64_t expected_fingerprint) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return Status::IoError("cannot open prefix snapshot " + path + ": " + Errno());
  int64_t file_bytes = 0;
  DSV4_ASSIGN_OR_RETURN(Header h, OpenAndReadHeader(path, expected_fingerprint, &fd, &file_bytes));
  return SnapshotFileHeader{.model_fingerprint = h.fingerprint,
                            .num_tokens = static_cast<int64_t>(h.num_tokens),
                            .token_hash = h.token_hash,
                            .file_bytes = file_bytes};
}

Result<SnapshotImage> ReadSnapshotFile(const std::string& path, uint64_t expected_fingerprint) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return Status::IoError("cannot open prefix snapshot " + path + ": " + Errno());
  int64_t file_bytes = 0;
  DSV4_ASSIGN_OR_RETURN(Header h, OpenAndReadHeader(path, expected_fingerprint, &fd, &file_bytes));
  auto truncated = [&] {
    return Status::DataLoss("prefix snapshot " + path + " is truncated (" +
                            std::to_string(file_bytes) + " bytes)");
  };
  auto mismatch = [&](const std::string& what) {
    return Status::DataLoss("prefix snapshot " + path + ": checksum mismatch in " + what);
  };
  auto read_sum = [&](uint64_t* v) {
    return ReadExact(fd.get(), {reinterpret_cast<uint8_t*>(v), 8});
  };
  SnapshotImage image;
  image.tokens.resize(h.num_tokens);
  uint64_t sum = 0;
  if (!ReadExact(fd.get(), {reinterpret_cast<uint8_t*>(image.tokens.data()), h.num_tokens * 4}) ||
      !read_sum(&sum)) {
    return truncated();
  }
  if (sum != Checksum64(Bytes(image.tokens.data(), image.tokens.size()))) return mismatch("tokens");
  if (HashTokens(image.tokens) != h.token_hash) return mismatch("the token hash");
  image.state.resize(h.state_bytes);
  if (!ReadExact(fd.get(), image.state) || !read_sum(&sum)) return truncated();
  if (sum != Checksum64(image.state)) return mismatch("the state");
  uint64_t draft_bytes = 0;
  if (h.version >= 2) {
    if (!read_sum(&draft_bytes)) return truncated();
    if (draft_bytes > static_cast<uint64_t>(file_bytes)) return truncated();
    image.draft.resize(draft_bytes);
    if (!ReadExact(fd.get(), image.draft) || !read_sum(&sum)) return truncated();
    if (sum != Checksum64(image.draft)) return mismatch("the draft state");
  }
  std::vector<PageRecord> table(h.num_pages);
  if (!ReadExact(fd.get(), {reinterpret_cast<uint8_t*>(table.data()), table.size() * kPageRecordBytes}) ||
      !read_sum(&sum)) {
    return truncated();
  }
  if (sum != Checksum64(Bytes(table.data(), table.size()))) return mismatch("the page table");
  uint64_t expected = kHeaderBytes + h.num_tokens * 4 + 8 + h.state_bytes + 8 +
                      DraftSectionBytes(h.version, draft_bytes) +
                      h.num_pages * kPageRecordBytes + 8 + kTrailerBytes;
  for (const PageRecord& r : table) expected += r.bytes;
  if (expected != static_cast<uint64_t>(file_bytes)) {
    return Status::DataLoss("prefix snapshot " + path + " has " + std::to_string(file_bytes) +
                            " bytes, its page table says " + std::to_string(expected));
  }
  image.pages.resize(table.size());
  for (size_t i = 0; i < table.size(); ++i) {
    SnapshotImage::Page& p = image.pages[i];
    p.component = table[i].component;
    p.layer = table[i].layer;
    p.bytes.resize(table[i].bytes);
    if (!ReadExact(fd.get(), p.bytes)) return truncated();
    if (Checksum64(p.bytes) != table[i].checksum) return mismatch("page " + std::to_string(i));
  }
  char end[8];
  uint64_t total = 0;
  if (!ReadExact(fd.get(), {reinterpret_cast<uint8_t*>(end), 8}) || !read_sum(&total)) {
    return truncated();
  }
  if (std::memcmp(end, kEndMagic, 8) != 0 || total != static_cast<uint64_t>(file_bytes)) {
    return Status::DataLoss("prefix snapshot " + path + " has a bad trailer");
  }
  return image;
}

}  // namespace dsv4::kv
