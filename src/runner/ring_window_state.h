// The saved form of a drafter's window ring (runner::Drafter::SaveState / RestoreState): the
// rows of positions [n - W, n) of every layer of a kv::V4SequenceCache, which is all a
// window-attention drafter reads next (MTP: one layer; DSpark: one per draft block).
//
// Layout (little-endian): magic[8] (the drafter's), u32 version (1), u32 layers, i64 n,
// i64 W, i64 entry bytes, i64 first position (max(0, n - W)), i64 rows (n - first), the rows
// layer by layer [layers, rows, entry bytes], u64 Checksum64 of all before it.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "kv/v4_cache.h"

namespace dsv4::runner {

struct RingWindowFormat {
  std::string drafter;  // "MTP", "DSpark": names the state in errors
  char magic[8];        // "DSV4MTPS"
  int64_t layers = 1;   // ring layers saved, [0, layers)
  int64_t window = 0;   // W: rows per layer the drafter reads
};

// Appends the window of `ring` (n = ring.num_tokens()). FailedPrecondition when the ring no
// longer holds a row of [n - W, n) (intact_from > n - W).
Status SaveRingWindow(const RingWindowFormat& f, const kv::V4SequenceCache& ring,
                      int64_t intact_from, std::vector<uint8_t>* out);

// Fills an empty `ring` (over the same ring config) from SaveRingWindow's bytes and returns
// the first position whose rows it holds. DataLoss names a short input, wrong magic, size,
// row range or checksum; FailedPrecondition a different version, layer count, window or entry
// size; positions beyond `max_positions` are refused.
Result<int64_t> RestoreRingWindow(const RingWindowFormat& f, std::span<const uint8_t> bytes,
                                  int64_t max_positions, kv::V4SequenceCache* ring);

}  // namespace dsv4::runner
