// Fuzzes the safetensors header parser. The input is a whole file image (8-byte little-endian
// header length, header JSON, data) split the way SafetensorsFile::Open splits a mapped file.
// Besides "no crash, no sanitizer report", an accepted header must describe tensors that tile
// the data section exactly and whose byte sizes match dtype and shape.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "checkpoint/safetensors.h"

namespace {

// Aborts (a finding for libFuzzer) when an accepted header breaks the parser's contract.
void CheckAccepted(const dsv4::checkpoint::SafetensorsHeader& header, uint64_t data_size) {
  uint64_t covered = 0;
  const dsv4::checkpoint::TensorInfo* prev = nullptr;
  for (const dsv4::checkpoint::TensorInfo& t : header.tensors) {
    if (prev != nullptr && !(prev->name < t.name)) std::abort();  // sorted, unique
    if (t.begin > t.end || t.end > data_size) std::abort();
    uint64_t numel = 1;
    for (int64_t d : t.shape) {
      if (d < 0 || __builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel)) std::abort();
    }
    uint64_t bytes = 0;
    if (__builtin_mul_overflow(numel, dsv4::DTypeSize(t.dtype), &bytes)) std::abort();
    if (bytes != t.end - t.begin) std::abort();
    covered += t.end - t.begin;
    prev = &t;
  }
  if (covered != data_size) std::abort();  // no holes, no overlaps
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 8) return 0;
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | data[i];
  // SafetensorsFile::Open rejects these before parsing.
  if (header_len > dsv4::checkpoint::kMaxSafetensorsHeaderBytes || header_len > size - 8) return 0;
  const std::string_view header(reinterpret_cast<const char*>(data) + 8, header_len);
  const uint64_t data_size = size - 8 - header_len;
  auto result = dsv4::checkpoint::ParseSafetensorsHeader(header, data_size, "fuzz");
  if (result.ok()) CheckAccepted(*result, data_size);
  return 0;
}
