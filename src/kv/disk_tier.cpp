#include "kv/disk_tier.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <set>
#include <system_error>
#include <vector>

namespace dsv4::kv {

namespace fs = std::filesystem;

DiskTier::DiskTier(DiskTierOptions options) : options_(std::move(options)) {
  if (!options_.warn) {
    options_.warn = [](const std::string& m) { std::fprintf(stderr, "warning: %s\n", m.c_str()); };
  }
  std::error_code ec;
  fs::create_directories(options_.dir, ec);
  if (ec || !fs::is_directory(options_.dir, ec)) {
    Warn("prefix cache folder " + options_.dir + " cannot be created (" +
         (ec ? ec.message() : std::string("not a folder")) +
         "): serving continues without the disk tier");
    return;
  }
  stats_.storing = options_.budget_bytes > 0;
  Index();
}

void DiskTier::Warn(const std::string& message) { options_.warn(message); }

void DiskTier::DisableStoring(const std::string& why) {
  if (!stats_.storing) return;
  stats_.storing = false;
  Warn(why + "; prefix snapshots are no longer written to " + options_.dir +
       " (serving continues; files already there are still read)");
}

std::string DiskTier::PathFor(int64_t num_tokens, uint64_t hash) const {
  char name[64];
  std::snprintf(name, sizeof name, "%" PRId64 "-%016" PRIx64 "%s", num_tokens, hash,
                kSnapshotFileSuffix);
  return (fs::path(options_.dir) / name).string();
}

void DiskTier::Index() {
  struct Found {
    fs::file_time_type mtime;
    Entry entry;
  };
  std::vector<Found> found;
  std::error_code ec;
  for (fs::directory_iterator it(options_.dir, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& p = it->path();
    // Only finished files: a temporary (`*.dsv4kv.tmp.<pid>`) of a killed writer never is.
    if (p.extension() != kSnapshotFileSuffix || !it->is_regular_file(ec)) continue;
    Result<SnapshotFileHeader> h = ReadSnapshotHeader(p.string(), options_.model_fingerprint);
    if (!h.ok()) {
      ++stats_.rejected_files;
      Warn("skipping " + h.status().message());
      continue;
    }
    if (p.string() != PathFor(h->num_tokens, h->token_hash)) {
      ++stats_.rejected_files;
      Warn("skipping prefix snapshot " + p.string() + ": its name does not match its header");
      continue;
    }
    found.push_back({it->last_write_time(ec),
                     {h->num_tokens, h->token_hash, h->file_bytes, p.string()}});
  }
  if (ec) Warn("cannot list prefix cache folder " + options_.dir + ": " + ec.message());
  std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) {
    return a.mtime != b.mtime ? a.mtime > b.mtime : a.entry.path < b.entry.path;
  });
  for (Found& f : found) {
    lru_.push_back(std::move(f.entry));
    index_[{lru_.back().num_tokens, lru_.back().hash}] = std::prev(lru_.end());
    stats_.bytes += lru_.back().bytes;
  }
  stats_.entries = static_cast<int64_t>(lru_.size());
  // A smaller budget than last time: the oldest files go.
  while (stats_.bytes > options_.budget_bytes && !lru_.empty()) {
    ++stats_.evicted;
    Erase(std::prev(lru_.end()), /*delete_file=*/true);
  }
}

void DiskTier::Erase(std::list<Entry>::iterator it, bool delete_file) {
  if (delete_file) {
    std::error_code ec;
    fs::remove(it->path, ec);
  }
  stats_.bytes -= it->bytes;
  index_.erase({it->num_tokens, it->hash});
  lru_.erase(it);
  stats_.entries = static_cast<int64_t>(lru_.size());
}

bool DiskTier::Contains(std::span<const int32_t> tokens, int64_t n) const {
  if (n <= 0 || n > static_cast<int64_t>(tokens.size())) return false;
  return index_.count({n, HashTokens(tokens.first(static_cast<size_t>(n)))}) > 0;
}

int64_t DiskTier::Find(std::span<const int32_t> tokens, int64_t max_len) const {
  max_len = std::min<int64_t>(max_len, static_cast<int64_t>(tokens.size()));
  std::set<int64_t, std::greater<>> lengths;
  for (const auto& [key, it] : index_) {
    if (key.first <= max_len) lengths.insert(key.first);
  }
  for (int64_t n : lengths) {
    if (Contains(tokens, n)) return n;
  }
  return 0;
}

bool DiskTier::Store(const SnapshotImage& image) {
  if (!stats_.storing || image.tokens.empty()) return false;
  const int64_t n = static_cast<int64_t>(image.tokens.size());
  const uint64_t hash = HashTokens(image.tokens);
  if (auto it = index_.find({n, hash}); it != index_.end()) Erase(it->second, false);
  // The header, tables and trailer are small next to the pages; a conservative estimate
  // decides what to evict, the file's real size is what is charged.
  const int64_t estimate = image.total_bytes() + n * 4 + 4096 +
                           static_cast<int64_t>(image.pages.size()) * 24;
  if (estimate > options_.budget_bytes) return false;
  while (stats_.bytes + estimate > options_.budget_bytes && !lru_.empty()) {
    ++stats_.evicted;
    Erase(std::prev(lru_.end()), /*delete_file=*/true);
  }
  const std::string path = PathFor(n, hash);
  if (Status s = WriteSnapshotFile(path, options_.model_fingerprint, image); !s.ok()) {
    DisableStoring(s.message());
    return false;
  }
  std::error_code ec;
  const int64_t bytes = static_cast<int64_t>(fs::file_size(path, ec));
  lru_.push_front({n, hash, ec ? estimate : bytes, path});
  index_[{n, hash}] = lru_.begin();
  stats_.bytes += lru_.front().bytes;
  stats_.entries = static_cast<int64_t>(lru_.size());
  ++stats_.writes;
  stats_.written_bytes += lru_.front().bytes;
  return true;
}

Result<SnapshotImage> DiskTier::Load(std::span<const int32_t> tokens, int64_t n) {
  if (n <= 0 || n > static_cast<int64_t>(tokens.size())) {
    return Status::NotFound("no prefix snapshot of that length");
  }
  const auto prefix = tokens.first(static_cast<size_t>(n));
  auto found = index_.find({n, HashTokens(prefix)});
  if (found == index_.end()) return Status::NotFound("no prefix snapshot of that prefix");
  auto it = found->second;
  Result<SnapshotImage> image = ReadSnapshotFile(it->path, options_.model_fingerprint);
  if (!image.ok()) {
    ++stats_.rejected_files;
    Warn("ignoring " + image.status().message() + " (recomputing instead)");
    // Ours but unreadable: delete it so it is not tried again (another model's or another
    // version's files are never indexed, so never deleted).
    Erase(it, /*delete_file=*/image.status().code() == StatusCode::kDataLoss);
    return image.status();
  }
  if (!std::equal(prefix.begin(), prefix.end(), image->tokens.begin(), image->tokens.end())) {
    // A hash collision, not corruption: the file is another prefix's.
    return Status::NotFound("prefix snapshot " + it->path + " holds another prefix");
  }
  lru_.splice(lru_.begin(), lru_, it);
  ++stats_.reads;
  stats_.read_bytes += it->bytes;
  return image;
}

void DiskTier::Clear() {
  while (!lru_.empty()) Erase(lru_.begin(), /*delete_file=*/true);
}

}  // namespace dsv4::kv
