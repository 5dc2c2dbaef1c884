#include "runner/ring_window_state.h"

#include <algorithm>
#include <cstring>

#include "kv/snapshot_file.h"

namespace dsv4::runner {
namespace {

constexpr uint32_t kVersion = 1;

#pragma pack(push, 1)
struct Header {
  char magic[8];
  uint32_t version;
  uint32_t layers;
  int64_t num_tokens;
  int64_t window;
  int64_t entry_bytes;
  int64_t first;
  int64_t rows;
};
#pragma pack(pop)

}  // namespace

Status SaveRingWindow(const RingWindowFormat& f, const kv::V4SequenceCache& ring,
                      int64_t intact_from, std::vector<uint8_t>* out) {
  const int64_t n = ring.num_tokens();
  const int64_t first = std::max<int64_t>(0, n - f.window);
  if (first < intact_from) {
    return Status::FailedPrecondition(f.drafter + " drafter: the ring no longer holds the rows "
                                      "of positions [" + std::to_string(first) + ", " +
                                      std::to_string(n) + ")");
  }
  const int64_t entry = ring.entry_bytes();
  Header h{};
  std::memcpy(h.magic, f.magic, sizeof h.magic);
  h.version = kVersion;
  h.layers = static_cast<uint32_t>(f.layers);
  h.num_tokens = n;
  h.window = f.window;
  h.entry_bytes = entry;
  h.first = first;
  h.rows = n - first;
  const size_t at = out->size();
  out->resize(at + sizeof h + static_cast<size_t>(f.layers * h.rows * entry) + 8);
  uint8_t* p = out->data() + at;
  std::memcpy(p, &h, sizeof h);
  p += sizeof h;
  for (int64_t layer = 0; layer < f.layers; ++layer) {
    for (int64_t pos = first; pos < n; ++pos, p += entry) {
      std::memcpy(p, ring.WindowRow(layer, pos), static_cast<size_t>(entry));
    }
  }
  const uint8_t* begin = out->data() + at;
  const uint64_t sum = kv::Checksum64({begin, static_cast<size_t>(p - begin)});
  std::memcpy(p, &sum, 8);
  return Status::Ok();
}

Result<int64_t> RestoreRingWindow(const RingWindowFormat& f, std::span<const uint8_t> bytes,
                                  int64_t max_positions, kv::V4SequenceCache* ring) {
  const std::string magic(f.magic, sizeof f.magic);
  auto bad = [&](const std::string& what) {
    return Status::DataLoss(f.drafter + " drafter state: " + what);
  };
  Header h{};
  if (bytes.size() < sizeof h + 8) {
    return bad(std::to_string(bytes.size()) + " bytes, shorter than its " +
               std::to_string(sizeof h + 8) + "-byte header and checksum");
  }
  std::memcpy(&h, bytes.data(), sizeof h);
  if (std::memcmp(h.magic, f.magic, sizeof h.magic) != 0) return bad("does not start with " + magic);
  if (h.version != kVersion) {
    return Status::FailedPrecondition(f.drafter + " drafter state has layout version " +
                                      std::to_string(h.version) + ", this build reads " +
                                      std::to_string(kVersion));
  }
  const int64_t entry = ring->entry_bytes();
  if (static_cast<int64_t>(h.layers) != f.layers || h.window != f.window ||
      h.entry_bytes != entry) {
    return Status::FailedPrecondition(
        f.drafter + " drafter state of " + std::to_string(h.layers) + " layers, a window of " +
        std::to_string(h.window) + " rows of " + std::to_string(h.entry_bytes) +
        " bytes; this drafter's is " + std::to_string(f.layers) + " layers, " +
        std::to_string(f.window) + " rows of " + std::to_string(entry) + " bytes");
  }
  const int64_t n = h.num_tokens;
  const int64_t first = std::max<int64_t>(0, n - f.window);
  if (n < 0 || n > max_positions || h.first != first || h.rows != n - first) {
    return bad("rows [" + std::to_string(h.first) + ", +" + std::to_string(h.rows) + ") for " +
               std::to_string(n) + " positions, expected [" + std::to_string(first) + ", " +
               std::to_string(n) + ")");
  }
  const size_t want = sizeof h + static_cast<size_t>(f.layers * h.rows * entry) + 8;
  if (bytes.size() != want) {
    return bad(std::to_string(bytes.size()) + " bytes, expected " + std::to_string(want));
  }
  uint64_t sum = 0;
  std::memcpy(&sum, bytes.data() + want - 8, 8);
  if (sum != kv::Checksum64(bytes.first(want - 8))) return bad("checksum mismatch");
  if (n > 0) {
    DSV4_RETURN_IF_ERROR(ring->Reserve(n));
    const uint8_t* p = bytes.data() + sizeof h;
    for (int64_t layer = 0; layer < f.layers; ++layer) {
      for (int64_t pos = first; pos < n; ++pos, p += entry) {
        std::memcpy(ring->WindowRow(layer, pos), p, static_cast<size_t>(entry));
      }
    }
    ring->set_num_tokens(n);
  }
  return first;
}

}  // namespace dsv4::runner
