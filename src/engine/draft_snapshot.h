// The drafter's side of a cached prefix (kv::PrefixSnapshot::draft, kv::SnapshotImage::draft:
// kept in RAM and written to the disk tier with the KV). For a prefix of p tokens it holds
// the drafter's state after consuming positions [0, p - 1) (runner::Drafter::SaveState) and
// the target's hidden row of position p - 1: the drafter's row of a position t is made with
// token t + 1, which for t = p - 1 lies past the cached prefix, so a request that continues
// from it consumes position p - 1 with its own token p (engine/speculation.h). The request
// then proposes exactly what it would have after prefilling the prefix itself.
//
// Layout (little-endian): "DSV4DRFT", u32 version (1), u32 name bytes, i64 position (the
// state's num_tokens: p - 1), u64 row values, u64 state bytes, then the drafter's name, the
// row (BF16) and the state. Bytes from a file are checked (the file's checksums cover them;
// the drafter checks its state again).
//
// Thread-safe: free functions over their arguments.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/bf16.h"
#include "core/status.h"

namespace dsv4::engine {

struct DraftSnapshot {
  std::string drafter;         // runner::Drafter::name()
  int64_t position = 0;        // the saved state's num_tokens(): the prefix length - 1
  std::vector<BF16> row;       // the target's hidden row of `position` (empty: none needed)
  std::vector<uint8_t> state;  // runner::Drafter::SaveState
};

std::vector<uint8_t> EncodeDraftSnapshot(const DraftSnapshot& d);
// DataLoss naming what is wrong (size, magic, lengths); FailedPrecondition for another
// layout version.
Result<DraftSnapshot> DecodeDraftSnapshot(std::span<const uint8_t> bytes);

}  // namespace dsv4::engine
