#include "core/function_ref.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "core/grow.h"
#include "core/thread_pool.h"

namespace dsv4 {
namespace {

int64_t CallTwice(FunctionRef<int64_t(int64_t)> f) { return f(1) + f(2); }

TEST(FunctionRefTest, CallsTheReferencedCallableWithItsCurrentState) {
  int64_t base = 10, calls = 0;
  auto add = [&](int64_t v) {
    ++calls;
    return base + v;
  };
  EXPECT_EQ(CallTwice(add), 23);
  base = 100;  // a reference, not a copy
  EXPECT_EQ(CallTwice(add), 203);
  EXPECT_EQ(calls, 4);
}

// A body capturing more than std::function keeps inline: the pool still runs every range
// exactly once (FunctionRef never copies it).
TEST(FunctionRefTest, PoolRunsLargeCaptures) {
  ThreadPool pool(3);
  std::vector<int> hits(1000, 0);
  int64_t a = 1, b = 2, c = 3, d = 4;
  pool.ParallelFor(1000, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) hits[i] += static_cast<int>(a + b + c + d - 9);
  });
  for (int h : hits) EXPECT_EQ(h, 1);
}

TEST(GrowToTest, GrowsOnlyAndKeepsContents) {
  std::vector<int> v;
  int* p = GrowTo(v, 4);
  for (int i = 0; i < 4; ++i) p[i] = i + 1;
  EXPECT_EQ(GrowTo(v, 2), p);  // smaller: same storage, nothing cleared
  EXPECT_EQ(v.size(), 4u);
  EXPECT_EQ(v[3], 4);
  GrowTo(v, 8);
  EXPECT_EQ(v.size(), 8u);
  EXPECT_EQ(v[0], 1);
  EXPECT_EQ(v[7], 0);  // new elements are value-initialised
}

}  // namespace
}  // namespace dsv4
