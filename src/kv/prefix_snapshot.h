// A cached prefix: a sequence's exact state after its first num_tokens tokens (a multiple of
// 128, so no compressed window is half full and the HCA state is empty), as pages of the
// manager. Holding one keeps its pages referenced; destroying it releases them. Each cache
// kind derives its own (V4PrefixSnapshot in v4_cache.h).
#pragma once

#include <cstdint>
#include <vector>

namespace dsv4::kv {

struct SnapshotImage;  // snapshot_file.h

class PrefixSnapshot {
 public:
  virtual ~PrefixSnapshot() = default;
  // Copies the snapshot's state and pages into `image` (its tokens are the caller's) for the
  // disk tier; false when this kind of snapshot cannot be written out.
  virtual bool ExportImage(SnapshotImage* /*image*/) const { return false; }
  int64_t num_tokens = 0;
  int64_t copied_bytes = 0;  // bytes of pages the snapshot owns alone (ring, CSA state)
  // Opaque bytes of the layer above, kept and written out with the snapshot (the engine: its
  // drafter's state at this prefix, engine/draft_snapshot.h); heap memory, not KV pages.
  std::vector<uint8_t> draft;
};

}  // namespace dsv4::kv
