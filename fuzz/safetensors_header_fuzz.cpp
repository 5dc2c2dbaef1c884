// Fuzzes the safetensors header parser and the per-tensor format checks a loader runs on what
// it accepts. The input is a whole file image (8-byte little-endian header length, header
// JSON, data) split the way SafetensorsFile::Open splits a mapped file. Besides "no crash, no
// sanitizer report", an accepted header must describe tensors that tile the data section
// exactly and whose byte sizes match dtype and shape. Its tensors then go through what the
// inventory check and the loaders do for a linear named by each `*.weight`: the format
// detection (DetectLinearFormat over every format: BF16, FP8 + E8M0 / F32 scales, MXFP4,
// NVFP4), the dtype and shape check of each tensor of that format for the [out, in] the weight
// implies, and the non-finite scan (an E4M3 NVFP4 scale that is NaN); each must answer with a
// status (seeds: fuzz/corpus/safetensors_header/nvfp4_*).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "checkpoint/linear_format.h"
#include "checkpoint/safetensors.h"
#include "checkpoint/tensor_store.h"

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

// The loaders' checks of every linear the accepted tensors could hold.
void CheckLinears(const dsv4::checkpoint::SafetensorsHeader& header, const uint8_t* data) {
  using dsv4::checkpoint::LinearFormat;
  std::vector<dsv4::checkpoint::OwnedTensor> owned;
  for (const dsv4::checkpoint::TensorInfo& t : header.tensors) {
    const auto* b = reinterpret_cast<const std::byte*>(data + t.begin);
    owned.push_back({t.name, t.dtype, t.shape, std::vector<std::byte>(b, b + (t.end - t.begin))});
  }
  auto store = dsv4::checkpoint::TensorStore::Create("fuzz", std::move(owned));
  if (!store.ok()) std::abort();  // the parser accepted exactly what the store takes
  static constexpr LinearFormat kAll[] = {LinearFormat::kBf16,      LinearFormat::kFp8E8M0,
                                          LinearFormat::kFp8F32,    LinearFormat::kFp4E8M0,
                                          LinearFormat::kFp4U8E8M0, LinearFormat::kNvfp4};
  constexpr std::string_view kSuffix = ".weight";
  for (const dsv4::checkpoint::TensorInfo& t : header.tensors) {
    if (t.name.size() <= kSuffix.size() || !t.name.ends_with(kSuffix) || t.shape.size() != 2) {
      continue;
    }
    const std::string module = t.name.substr(0, t.name.size() - kSuffix.size());
    auto format = dsv4::checkpoint::DetectLinearFormat(**store, module, kAll);
    if (!format.ok()) continue;
    const bool fp4 = dsv4::checkpoint::IsFp4Format(*format);
    if (fp4 && t.shape[1] > (int64_t{1} << 40)) continue;
    const int64_t out = t.shape[0], in = fp4 ? t.shape[1] * 2 : t.shape[1];
    for (const auto& lt : dsv4::checkpoint::LinearTensors(module, *format, out, in)) {
      if (lt.optional && !(*store)->Has(lt.name)) continue;
      auto v = (*store)->Get(lt.name, lt.dtype, lt.shape);
      if (v.ok()) (void)(*store)->CheckFinite(*v);
    }
  }
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
  if (result.ok()) {
    CheckAccepted(*result, data_size);
    CheckLinears(*result, data + 8 + header_len);
  }
  return 0;
}
