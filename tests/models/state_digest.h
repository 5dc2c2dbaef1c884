// Comparing two sequences' states bit for bit in tests (speculative rollback against a
// sequence that never saw the rejected tokens): a state as named parts, small values in full
// and buffers as a hash of their bytes, so that a mismatch names the part that differs.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "kv/kv_manager.h"
#include "kv/layout.h"

namespace dsv4::test {

struct StatePart {
  std::string name;
  std::string value;
};
using StateDigest = std::vector<StatePart>;

inline std::string BytesHash(const void* data, size_t bytes) {
  const std::string_view s(static_cast<const char*>(data), bytes);
  return std::to_string(bytes) + " bytes, hash " + std::to_string(std::hash<std::string_view>{}(s));
}

// Pages and bytes of each component a sequence holds (Usage()).
inline void AddUsage(const kv::KvFootprint& fp, StateDigest* d) {
  d->push_back({"usage tokens", std::to_string(fp.num_tokens)});
  for (const kv::KvComponent& c : fp.components) {
    d->push_back({"usage " + c.name,
                  std::to_string(c.entries_per_layer) + " pages, " + std::to_string(c.bytes())});
  }
}

// The manager's accounting: pages in use per component and bytes available.
inline void AddManager(const kv::KvManager& m, StateDigest* d) {
  const kv::KvStats s = m.Stats();
  d->push_back({"manager used bytes", std::to_string(s.used_bytes)});
  for (const kv::ComponentStats& c : s.components) {
    d->push_back({"manager " + c.name, std::to_string(c.pages_in_use) + " pages"});
  }
}

// Success when both digests have the same parts with the same values (parts whose name
// contains `skip`, when given, only need the same name); else the first difference.
inline ::testing::AssertionResult SameState(const StateDigest& want, const StateDigest& got,
                                            std::string_view skip = {}) {
  for (size_t i = 0; i < want.size() && i < got.size(); ++i) {
    const bool skipped = !skip.empty() && want[i].name.find(skip) != std::string::npos;
    if (want[i].name != got[i].name || (!skipped && want[i].value != got[i].value)) {
      return ::testing::AssertionFailure() << "part " << i << ": expected " << want[i].name
                                           << " = " << want[i].value << ", got " << got[i].name
                                           << " = " << got[i].value;
    }
  }
  if (want.size() != got.size()) {
    return ::testing::AssertionFailure() << want.size() << " parts expected, got " << got.size();
  }
  return ::testing::AssertionSuccess();
}

}  // namespace dsv4::test
