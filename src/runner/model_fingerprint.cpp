#include "runner/model_fingerprint.h"

#include <algorithm>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "checkpoint/config.h"
#include "kv/snapshot_file.h"

namespace dsv4::runner {
namespace {

constexpr size_t kSampleBytes = 4096;

// Chains Checksum64 over pieces: each piece's checksum is seeded by the running value.
class Chain {
 public:
  void Add(std::span<const uint8_t> bytes) { h_ = kv::Checksum64(bytes, h_ ^ ++n_); }
  void Add(const std::string& s) { Add({reinterpret_cast<const uint8_t*>(s.data()), s.size()}); }
  uint64_t value() const { return h_; }

 private:
  uint64_t h_ = 0x64737634u;  // "dsv4"
  uint64_t n_ = 0;
};

}  // namespace

uint64_t ModelFingerprint(const LoadedModel& model) {
  Chain chain;
  chain.Add(checkpoint::ModelConfigToJson(model.lm->config()).dump());
  if (model.weights == nullptr) return chain.value();
  std::vector<std::string> names = model.weights->names();
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    Result<checkpoint::TensorView> v = model.weights->Get(name);
    if (!v.ok()) {
      chain.Add(name + " unreadable");
      continue;
    }
    std::string desc = name + " " + std::string(DTypeName(v->dtype)) + " " +
                       checkpoint::ShapeToString(v->shape);
    chain.Add(desc);
    const auto* data = reinterpret_cast<const uint8_t*>(v->bytes.data());
    const size_t n = v->bytes.size();
    if (n <= 3 * kSampleBytes) {
      chain.Add({data, n});
    } else {
      chain.Add({data, kSampleBytes});
      chain.Add({data + n / 2 - kSampleBytes / 2, kSampleBytes});
      chain.Add({data + n - kSampleBytes, kSampleBytes});
    }
  }
  return chain.value();
}

}  // namespace dsv4::runner
