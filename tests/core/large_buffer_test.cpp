#include "core/large_buffer.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace dsv4 {
namespace {

// Small buffers: zero-filled, 64-byte aligned, no huge pages asked for.
TEST(LargeBufferTest, SmallBuffersAreZeroedAndAligned) {
  for (size_t bytes : {size_t{0}, size_t{1}, size_t{63}, size_t{4096}, kHugePageBytes - 1}) {
    LargeBuffer b(bytes);
    ASSERT_NE(b.data(), nullptr);
    EXPECT_EQ(b.size(), bytes);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % 64, 0u);
    EXPECT_FALSE(b.huge_pages_requested());
    for (size_t i = 0; i < bytes; ++i) ASSERT_EQ(b.data()[i], std::byte{0}) << i;
  }
}

// From 2 MiB: aligned to a huge page, zero-filled to the last byte, writable; whether the
// kernel took the madvise depends on its THP mode (huge_pages_requested is false where THP is
// off), so only the layout is checked.
TEST(LargeBufferTest, LargeBuffersStartOnAHugePage) {
  for (size_t bytes : {kHugePageBytes, kHugePageBytes + 1, 3 * kHugePageBytes + 4096}) {
    LargeBuffer b(bytes);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % kHugePageBytes, 0u);
    EXPECT_EQ(b.size(), bytes);
    size_t nonzero = 0;
    for (size_t i = 0; i < bytes; ++i) nonzero += b.data()[i] != std::byte{0};
    EXPECT_EQ(nonzero, 0u);
    b.data()[bytes - 1] = std::byte{7};
    EXPECT_EQ(b.data()[bytes - 1], std::byte{7});
  }
}

// Move-only ownership: a vector of buffers (WeightArena's) keeps every buffer's address.
TEST(LargeBufferTest, MovesKeepTheMemory) {
  std::vector<LargeBuffer> v;
  std::vector<const std::byte*> addresses;
  for (int i = 0; i < 10; ++i) {
    v.emplace_back(i % 2 == 0 ? size_t{100} : kHugePageBytes);
    addresses.push_back(v.back().data());
  }
  for (int i = 0; i < 10; ++i) EXPECT_EQ(v[i].data(), addresses[i]) << i;
  LargeBuffer moved = std::move(v[1]);
  EXPECT_EQ(moved.data(), addresses[1]);
  EXPECT_EQ(moved.size(), kHugePageBytes);
}

}  // namespace
}  // namespace dsv4
