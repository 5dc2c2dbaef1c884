#include "engine/draft_snapshot.h"

#include <cstring>

namespace dsv4::engine {
namespace {

constexpr char kMagic[8] = {'D', 'S', 'V', '4', 'D', 'R', 'F', 'T'};
constexpr uint32_t kVersion = 1;

#pragma pack(push, 1)
struct Header {
  char magic[8];
  uint32_t version;
  uint32_t name_bytes;
  int64_t position;
  uint64_t row_values;
  uint64_t state_bytes;
};
#pragma pack(pop)

}  // namespace

std::vector<uint8_t> EncodeDraftSnapshot(const DraftSnapshot& d) {
  Header h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.version = kVersion;
  h.name_bytes = static_cast<uint32_t>(d.drafter.size());
  h.position = d.position;
  h.row_values = d.row.size();
  h.state_bytes = d.state.size();
  std::vector<uint8_t> out(sizeof h + d.drafter.size() + d.row.size() * sizeof(BF16) +
                           d.state.size());
  uint8_t* p = out.data();
  std::memcpy(p, &h, sizeof h);
  p += sizeof h;
  std::memcpy(p, d.drafter.data(), d.drafter.size());
  p += d.drafter.size();
  if (!d.row.empty()) std::memcpy(p, d.row.data(), d.row.size() * sizeof(BF16));
  p += d.row.size() * sizeof(BF16);
  if (!d.state.empty()) std::memcpy(p, d.state.data(), d.state.size());
  return out;
}

Result<DraftSnapshot> DecodeDraftSnapshot(std::span<const uint8_t> bytes) {
  Header h{};
  if (bytes.size() < sizeof h) {
    return Status::DataLoss("drafter state of a cached prefix: " + std::to_string(bytes.size()) +
                            " bytes, shorter than its " + std::to_string(sizeof h) +
                            "-byte header");
  }
  std::memcpy(&h, bytes.data(), sizeof h);
  if (std::memcmp(h.magic, kMagic, sizeof kMagic) != 0) {
    return Status::DataLoss("drafter state of a cached prefix does not start with DSV4DRFT");
  }
  if (h.version != kVersion) {
    return Status::FailedPrecondition("drafter state of a cached prefix has layout version " +
                                      std::to_string(h.version) + ", this build reads " +
                                      std::to_string(kVersion));
  }
  const uint64_t rest = bytes.size() - sizeof h;
  if (h.name_bytes > rest || h.row_values > rest / sizeof(BF16) || h.state_bytes > rest ||
      h.name_bytes + h.row_values * sizeof(BF16) + h.state_bytes != rest || h.position < 0) {
    return Status::DataLoss("drafter state of a cached prefix: " + std::to_string(bytes.size()) +
                            " bytes do not hold the name, row and state its header gives (" +
                            std::to_string(h.name_bytes) + ", " +
                            std::to_string(h.row_values) + " values, " +
                            std::to_string(h.state_bytes) + ")");
  }
  DraftSnapshot d;
  const uint8_t* p = bytes.data() + sizeof h;
  d.drafter.assign(reinterpret_cast<const char*>(p), h.name_bytes);
  p += h.name_bytes;
  d.position = h.position;
  d.row.resize(h.row_values);
  if (h.row_values > 0) std::memcpy(d.row.data(), p, h.row_values * sizeof(BF16));
  p += h.row_values * sizeof(BF16);
  d.state.assign(p, p + h.state_bytes);
  return d;
}

}  // namespace dsv4::engine
