// The disk tier of the prefix cache: snapshot images (snapshot_file.h) of one model in one
// folder, one file per prefix (`<num_tokens>-<token hash>.dsv4kv`), least recently used files
// deleted to stay within a byte budget. On construction it indexes the folder's files of this
// model (by their headers; newest modification first), so cached prefixes survive restarts.
//
// Failures never fail a request: a file that is truncated, corrupt, of another model or of
// another format version is skipped with a warning naming it (and a corrupt one of this model
// deleted); a folder that cannot be created, or a write that fails (full or read-only disk),
// turns storing off for good with one warning, and lookups go on over the files already
// indexed. Temporary files of interrupted writes are never indexed.
//
// Not thread-safe: the engine thread owns it.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <span>
#include <string>
#include <utility>

#include "core/status.h"
#include "kv/snapshot_file.h"

namespace dsv4::kv {

struct DiskTierOptions {
  std::string dir;                // created if missing
  int64_t budget_bytes = 0;       // files together stay within it
  uint64_t model_fingerprint = 0; // files of other fingerprints are not ours
  // Receives each warning (one line, no trailing newline); default: "warning: ..." on stderr.
  std::function<void(const std::string&)> warn;
};

struct DiskTierStats {
  bool storing = false;        // false once disabled (or never enabled)
  int64_t entries = 0;
  int64_t bytes = 0;           // file bytes held now
  int64_t writes = 0;
  int64_t written_bytes = 0;
  int64_t reads = 0;           // successful loads
  int64_t read_bytes = 0;
  int64_t evicted = 0;         // files deleted to stay within the budget
  int64_t rejected_files = 0;  // skipped: truncated, corrupt, foreign, old version
};

class DiskTier {
 public:
  explicit DiskTier(DiskTierOptions options);
  DiskTier(const DiskTier&) = delete;
  DiskTier& operator=(const DiskTier&) = delete;

  // True when tokens[0, n) has a file.
  bool Contains(std::span<const int32_t> tokens, int64_t n) const;
  // The longest n <= max_len with a file for tokens[0, n); 0 if none.
  int64_t Find(std::span<const int32_t> tokens, int64_t max_len) const;
  // Stores `image` as the most recently used file, deleting the least recently used ones to
  // make room. False when it was not stored: storing is off, the image alone exceeds the
  // budget, or the write failed (storing is then turned off, with one warning).
  bool Store(const SnapshotImage& image);
  // Reads tokens[0, n) back, checked in full (tokens compared exactly), and marks it most
  // recently used. NotFound when there is no such file; DataLoss / FailedPrecondition / IoError
  // when it cannot be trusted: the entry is then dropped (with a warning) and the caller
  // recomputes.
  Result<SnapshotImage> Load(std::span<const int32_t> tokens, int64_t n);
  // Deletes every file of the index.
  void Clear();

  const DiskTierStats& stats() const { return stats_; }
  const std::string& dir() const { return options_.dir; }

 private:
  struct Entry {
    int64_t num_tokens = 0;
    uint64_t hash = 0;
    int64_t bytes = 0;
    std::string path;
  };
  using Key = std::pair<int64_t, uint64_t>;  // (num_tokens, token hash)
  void Index();
  void Warn(const std::string& message);
  void DisableStoring(const std::string& why);
  void Erase(std::list<Entry>::iterator it, bool delete_file);
  std::string PathFor(int64_t num_tokens, uint64_t hash) const;

  DiskTierOptions options_;
  DiskTierStats stats_;
  std::list<Entry> lru_;  // front = most recently used
  std::map<Key, std::list<Entry>::iterator> index_;
};

}  // namespace dsv4::kv
