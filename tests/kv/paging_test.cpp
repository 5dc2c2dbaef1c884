// Pages: layout math, pool reference counts and budget, all-or-nothing reservation.
#include <gtest/gtest.h>

#include "kv/kv_manager.h"
#include "kv/v4_cache.h"
#include "checkpoint/presets.h"

namespace dsv4::kv {
namespace {

TEST(PageLayout, FlashPagesAndBytes) {
  const checkpoint::ModelConfig c = checkpoint::PresetConfig("v4-flash").value();
  const PageLayout pl(c, DefaultKvFormats(checkpoint::Arch::kV4));
  ASSERT_NE(pl.Find(Component::kCsaEntries), nullptr);
  EXPECT_EQ(pl.Find(Component::kCsaEntries)->page_bytes(), 64 * 584);
  EXPECT_EQ(pl.Find(Component::kCsaIndexerKeys)->page_bytes(), 64 * 68);
  EXPECT_EQ(pl.Find(Component::kSwaWindow)->entries_per_page, 16);
  EXPECT_EQ(pl.Find(Component::kCsaState)->page_bytes(), 80 * 1024);
  EXPECT_EQ(pl.PagesAt(Component::kCsaEntries, 255), 1);   // 63 entries
  EXPECT_EQ(pl.PagesAt(Component::kCsaEntries, 256), 1);   // 64 entries
  EXPECT_EQ(pl.PagesAt(Component::kCsaEntries, 260), 2);   // 65 entries
  EXPECT_EQ(pl.PagesAt(Component::kHcaEntries, 8192), 1);
  EXPECT_EQ(pl.PagesAt(Component::kSwaWindow, 17), 2);
  EXPECT_EQ(pl.PagesAt(Component::kSwaWindow, 100000), 8);
  EXPECT_EQ(pl.PagesAt(Component::kCsaState, 0), 0);
  EXPECT_EQ(pl.PagesAt(Component::kCsaState, 1), 1);
  // With one entry per page the pages hold exactly the byte formula of layout.h.
  const PageLayout exact(c, DefaultKvFormats(checkpoint::Arch::kV4), 1);
  for (int64_t n : {0, 1, 127, 128, 1000, 1048576}) {
    const KvFootprint fp = ComputeKvFootprint(c, DefaultKvFormats(checkpoint::Arch::kV4), n);
    if (n == 0 || n >= 128) {  // window pages hold 16 entries: exact once the ring is full
      EXPECT_EQ(exact.BytesAt(n), fp.total_bytes()) << n;
    }
    EXPECT_GE(pl.BytesAt(n), fp.total_bytes()) << n;
  }
  const PageLayout v32(checkpoint::PresetConfig("v3.2").value(), DefaultKvFormats(checkpoint::Arch::kV32));
  EXPECT_EQ(v32.BytesAt(1 << 20), int64_t{48068} * (1 << 20));
}

TEST(BlockPool, RefcountsAndBudget) {
  KvBudget budget(1000);
  BlockPool pool(Component::kCsaEntries, 300, &budget, true);
  auto a = pool.Allocate(), b = pool.Allocate(), c = pool.Allocate();
  ASSERT_TRUE(a && b && c);
  EXPECT_FALSE(pool.Allocate().has_value());  // 1200 > 1000
  EXPECT_EQ(budget.used(), 900);
  pool.data(*a)[299] = 7;
  pool.AddRef(*a);
  pool.Release(*a);
  EXPECT_EQ(pool.refcount(*a), 1);
  EXPECT_EQ(pool.data(*a)[299], 7);
  pool.Release(*a);
  EXPECT_EQ(pool.pages_in_use(), 2);
  EXPECT_EQ(budget.used(), 600);
  auto d = pool.Allocate();
  ASSERT_TRUE(d);
  EXPECT_EQ(*d, *a);                 // id reused
  EXPECT_EQ(pool.data(*d)[299], 0);  // fresh memory
  pool.Release(*b);
  pool.Release(*c);
  pool.Release(*d);
  EXPECT_EQ(budget.used(), 0);
  EXPECT_EQ(pool.pages_in_use(), 0);
}

TEST(V4SequenceCache, ReserveIsAllOrNothingAndReleaseReturnsEverything) {
  const checkpoint::ModelConfig c = checkpoint::TinyV4Config();
  const PageLayout pl(c, DefaultKvFormats(checkpoint::Arch::kV4));
  KvManager mgr(pl, pl.BytesAt(300) + pl.BytesAt(10));
  V4SequenceCache a(c, &mgr), b(c, &mgr);
  ASSERT_TRUE(a.Reserve(300).ok());
  EXPECT_EQ(mgr.Stats().used_bytes, pl.BytesAt(300));
  Status s = b.Reserve(300);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(b.reserved_tokens(), 0);
  EXPECT_EQ(mgr.Stats().used_bytes, pl.BytesAt(300));  // the failed call took nothing
  ASSERT_TRUE(b.Reserve(10).ok());
  a.Release();
  b.Release();
  EXPECT_EQ(mgr.Stats().used_bytes, 0);
  for (const auto& comp : mgr.Stats().components) EXPECT_EQ(comp.pages_in_use, 0) << comp.name;
}

}  // namespace
}  // namespace dsv4::kv
