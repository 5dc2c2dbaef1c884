// The on-disk format of one prefix snapshot (the disk tier of the prefix cache, disk_tier.h).
// Generic over what a snapshot is: the exact token prefix, an opaque per-sequence state blob
// (V4: per-layer entry counts; a cache whose snapshots are page references only would leave
// it empty) and a list of pages, each tagged (component, layer). The cache kind turns its
// snapshot into a SnapshotImage and back (V4: v4_cache.h); this file only stores and checks.
//
// Layout (little-endian; every integer fixed-width):
//   header   64 B: magic "DSV4KVSN", u32 version, u32 header bytes (64), u64 model
//                  fingerprint, u64 num_tokens, u64 token hash (HashTokens), u64 state bytes,
//                  u64 num_pages, u64 Checksum64 of the 56 bytes before it
//   tokens   num_tokens x i32, then u64 Checksum64 of them
//   state    state bytes, then u64 Checksum64 of them
//   draft    (version 2) u64 draft bytes, the bytes, then u64 Checksum64 of them
//   pages    num_pages x {u16 component, u16 0, u32 layer, u64 bytes, u64 Checksum64 of the
//            page}, then u64 Checksum64 of this table
//   data     the pages' bytes, in table order
//   trailer  "DSV4KEND", u64 total file bytes
// Version 1 files (no draft section) still load, with an empty draft: the KV is exact, only
// the drafter's state is missing (the engine then does not draft for that request).
// A file is trusted only if its size is exactly what the header and table say and every
// checksum matches; anything else (truncated, corrupt, another model, another version) is
// refused with a Status naming the file.
//
// Thread-safe: free functions over their arguments.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"

namespace dsv4::kv {

inline constexpr uint32_t kSnapshotFileVersion = 2;     // what WriteSnapshotFile writes
inline constexpr uint32_t kOldestSnapshotFileVersion = 1;  // the oldest it reads
inline constexpr const char* kSnapshotFileSuffix = ".dsv4kv";

struct SnapshotImage {
  struct Page {
    uint16_t component = 0;  // kv::Component of the cache kind
    uint32_t layer = 0;
    std::vector<uint8_t> bytes;
  };
  std::vector<int32_t> tokens;  // the prefix; its length is the snapshot's position
  std::vector<uint8_t> state;   // opaque per-sequence state (may be empty)
  std::vector<Page> pages;      // in the order the cache kind defines
  // Opaque bytes of the layer above, kept with the prefix (the engine: its drafter's state
  // there, engine/draft_snapshot.h); may be empty.
  std::vector<uint8_t> draft;
  int64_t total_bytes() const;  // state + page + draft bytes
};

// What a file's header says, read without its body (indexing a folder at start).
struct SnapshotFileHeader {
  uint64_t model_fingerprint = 0;
  int64_t num_tokens = 0;
  uint64_t token_hash = 0;
  int64_t file_bytes = 0;  // the file's size on disk
};

// 64-bit checksum of `bytes` (four multiply-rotate lanes over 8-byte words, a byte tail and a
// final avalanche; written here, not a standard hash). Detects any change of a page with
// overwhelming probability; not cryptographic.
uint64_t Checksum64(std::span<const uint8_t> bytes, uint64_t seed = 0);
// FNV-1a over the token ids: the key the prefix cache and the disk tier index prefixes by.
uint64_t HashTokens(std::span<const int32_t> tokens);

// Writes `image` to `path` atomically: a temporary file in the same folder, written, fsync'd,
// renamed over `path`, then the folder fsync'd; a failure leaves no file at `path` (and
// removes the temporary). IoError naming the path and errno's message (ENOSPC, EROFS, ...).
Status WriteSnapshotFile(const std::string& path, uint64_t model_fingerprint,
                         const SnapshotImage& image);

// Reads and checks the header only. DataLoss (bad magic, bad checksum, size below what the
// header says), FailedPrecondition (another version, or `expected_fingerprint` differs:
// another model), IoError (unreadable).
Result<SnapshotFileHeader> ReadSnapshotHeader(const std::string& path,
                                              uint64_t expected_fingerprint);
// Reads the whole file and checks everything: the errors of ReadSnapshotHeader, and DataLoss
// for a wrong size, a checksum mismatch or tokens that do not match the header's hash.
Result<SnapshotImage> ReadSnapshotFile(const std::string& path, uint64_t expected_fingerprint);

}  // namespace dsv4::kv
