// Pages: layout math, pool reference counts and budget, all-or-nothing reservation.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>

#include "kv/kv_manager.h"
#include "kv/snapshot_file.h"
#include "kv/v32_cache.h"
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

// Either paged cache (V4SequenceCache, V32SequenceCache) on the tiny config of its model.
template <class Cache>
void ExpectReserveAllOrNothing(const checkpoint::ModelConfig& c) {
  const PageLayout pl(c, DefaultKvFormats(c.arch));
  KvManager mgr(pl, pl.BytesAt(300) + pl.BytesAt(10));
  Cache a(c, &mgr), b(c, &mgr);
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

TEST(V4SequenceCache, ReserveIsAllOrNothingAndReleaseReturnsEverything) {
  ExpectReserveAllOrNothing<V4SequenceCache>(checkpoint::TinyV4Config());
}

// The KV manager charges V3.2 exactly capacity.md §3.1's bytes: 656 B MLA record + 132 B
// indexer key per token per layer (layout.h's formulas, the one owner), so 48,068 B per token
// for 61 layers; pages are full at multiples of 64 tokens.
TEST(V32SequenceCache, ChargesCapacityMdBytesPerTokenPerLayer) {
  const checkpoint::ModelConfig c = checkpoint::PresetConfig("v3.2").value();
  const KvFormats f = DefaultKvFormats(checkpoint::Arch::kV32);
  const PageLayout pl(c, f);
  int64_t per_token_per_layer = 0;
  for (const ComponentLayout& cl : pl.components()) {
    EXPECT_EQ(cl.layers, 61);
    per_token_per_layer += cl.entry_bytes;
  }
  EXPECT_EQ(per_token_per_layer, 656 + 132);
  EXPECT_EQ(per_token_per_layer, MlaRecordBytes(c, f.mla) + IndexerKeyBytes(c.index_head_dim, f.indexer));
  EXPECT_DOUBLE_EQ(61.0 * per_token_per_layer, GrowingBytesPerToken(c, f));
  KvManager mgr(pl, int64_t{1} << 40, /*backing=*/false);
  V32SequenceCache cache(c, &mgr);
  ASSERT_TRUE(cache.Reserve(64 * 3).ok());
  EXPECT_EQ(mgr.Stats().used_bytes, 64 * 3 * 48068);
  ASSERT_TRUE(cache.Reserve(64 * 3 + 1).ok());  // one more page per layer and component
  EXPECT_EQ(mgr.Stats().used_bytes, 64 * 4 * 48068);
  EXPECT_EQ(cache.Usage().total_bytes(), mgr.Stats().used_bytes);
  cache.Release();
  EXPECT_EQ(mgr.Stats().used_bytes, 0);
}

TEST(V32SequenceCache, ReserveIsAllOrNothingAndReleaseReturnsEverything) {
  ExpectReserveAllOrNothing<V32SequenceCache>(checkpoint::TinyV32Config());
}

// Writes tokens [from, to) of every layer of `cache` with bytes derived from (tag, layer, pos).
void FillV32(V32SequenceCache& cache, int64_t layers, int64_t from, int64_t to, int tag) {
  ASSERT_TRUE(cache.Reserve(to).ok());
  for (int64_t l = 0; l < layers; ++l) {
    for (int64_t p = from; p < to; ++p) {
      std::memset(cache.AppendMlaRecord(l), (tag * 31 + l * 7 + p) & 0xff,
                  static_cast<size_t>(cache.record_bytes()));
      std::memset(cache.AppendIndexerKey(l), (tag * 17 + l * 5 + p) & 0xff,
                  static_cast<size_t>(cache.indexer_key_bytes()));
    }
  }
  cache.set_num_tokens(to);
}

bool HoldsV32(const V32SequenceCache& cache, int64_t layers, int64_t from, int64_t to, int tag) {
  for (int64_t l = 0; l < layers; ++l) {
    for (int64_t p = from; p < to; ++p) {
      if (cache.MlaRecord(l, p)[cache.record_bytes() - 1] != ((tag * 31 + l * 7 + p) & 0xff) ||
          cache.IndexerKey(l, p)[0] != ((tag * 17 + l * 5 + p) & 0xff)) {
        return false;
      }
    }
  }
  return true;
}

// A V3.2 snapshot is page references only (nothing copied); with pages that 128 does not
// divide, the page holding position 128 is shared and each writer copies it before writing.
TEST(V32SequenceCache, SnapshotSharesPagesAndCopiesOnWrite) {
  const checkpoint::ModelConfig c = checkpoint::TinyV32Config();
  const int64_t L = c.num_hidden_layers;
  const PageLayout pl(c, DefaultKvFormats(checkpoint::Arch::kV32), 48);
  KvManager mgr(pl, int64_t{1} << 30);
  auto donor = std::make_unique<V32SequenceCache>(c, &mgr);
  FillV32(*donor, L, 0, 128, 1);
  ASSERT_TRUE(donor->Reserve(200).ok());  // reserved ahead: those pages stay private
  const int64_t before = mgr.Stats().used_bytes;
  std::unique_ptr<PrefixSnapshot> snap = donor->TakeSnapshot();
  ASSERT_NE(snap, nullptr);
  EXPECT_EQ(snap->num_tokens, 128);
  EXPECT_EQ(snap->copied_bytes, 0);
  EXPECT_EQ(mgr.Stats().used_bytes, before);  // references only
  V32SequenceCache hit(c, &mgr);
  ASSERT_TRUE(hit.RestoreSnapshot(*snap).ok());
  EXPECT_EQ(mgr.Stats().used_bytes, before);
  EXPECT_EQ(hit.num_tokens(), 128);
  EXPECT_TRUE(HoldsV32(hit, L, 0, 128, 1));
  // Both continue differently: the shared third page (positions 96..143) is copied by each.
  FillV32(hit, L, 128, 140, 2);
  FillV32(*donor, L, 128, 140, 3);
  EXPECT_TRUE(HoldsV32(hit, L, 0, 128, 1) && HoldsV32(hit, L, 128, 140, 2));
  EXPECT_TRUE(HoldsV32(*donor, L, 0, 128, 1) && HoldsV32(*donor, L, 128, 140, 3));
  V32SequenceCache again(c, &mgr);
  ASSERT_TRUE(again.RestoreSnapshot(*snap).ok());
  EXPECT_TRUE(HoldsV32(again, L, 0, 128, 1));
  // Not at a multiple of 128: no snapshot.
  EXPECT_EQ(hit.TakeSnapshot(), nullptr);
  donor.reset();
  hit.Release();
  again.Release();
  EXPECT_GT(mgr.Stats().used_bytes, 0);  // the snapshot still holds its pages
  snap.reset();
  EXPECT_EQ(mgr.Stats().used_bytes, 0);
  for (const auto& comp : mgr.Stats().components) EXPECT_EQ(comp.pages_in_use, 0) << comp.name;
}

// The disk tier's image of a V3.2 snapshot (no state; per layer record pages, then key pages)
// restores into pages of a new cache bit for bit, and an image that does not fit is refused.
TEST(V32SequenceCache, SnapshotImageRestoresIntoOwnPages) {
  const checkpoint::ModelConfig c = checkpoint::TinyV32Config();
  const int64_t L = c.num_hidden_layers;
  const PageLayout pl(c, DefaultKvFormats(checkpoint::Arch::kV32), 48);
  KvManager mgr(pl, int64_t{1} << 30);
  V32SequenceCache donor(c, &mgr);
  FillV32(donor, L, 0, 256, 4);
  std::unique_ptr<PrefixSnapshot> snap = donor.TakeSnapshot();
  ASSERT_NE(snap, nullptr);
  SnapshotImage image;
  ASSERT_TRUE(snap->ExportImage(&image));
  image.tokens.assign(256, 7);
  EXPECT_TRUE(image.state.empty());
  EXPECT_EQ(static_cast<int64_t>(image.pages.size()),
            L * (pl.PagesAt(Component::kMlaLatent, 256) + pl.PagesAt(Component::kMlaIndexerKeys, 256)));
  snap.reset();
  donor.Release();
  V32SequenceCache restored(c, &mgr);
  ASSERT_TRUE(restored.RestoreImage(image).ok());
  EXPECT_EQ(restored.num_tokens(), 256);
  EXPECT_TRUE(HoldsV32(restored, L, 0, 256, 4));
  FillV32(restored, L, 256, 300, 5);  // continues in its own pages
  EXPECT_TRUE(HoldsV32(restored, L, 0, 256, 4) && HoldsV32(restored, L, 256, 300, 5));
  restored.Release();
  EXPECT_EQ(mgr.Stats().used_bytes, 0);

  struct Bad {
    const char* what;
    void (*edit)(SnapshotImage&);
    const char* message;
  };
  const Bad cases[] = {
      {"length", [](SnapshotImage& i) { i.tokens.resize(200); }, "not a positive multiple of 128"},
      {"state", [](SnapshotImage& i) { i.state.assign(16, 0); }, "state of 16 bytes, expected none"},
      {"too few pages", [](SnapshotImage& i) { i.pages.pop_back(); }, "too few pages"},
      {"too many pages", [](SnapshotImage& i) { i.pages.push_back(i.pages.back()); }, "too many pages"},
      {"page size", [](SnapshotImage& i) { i.pages[0].bytes.pop_back(); }, "page 0 is (layer 0"},
      {"component", [](SnapshotImage& i) { i.pages[0].component += 1; }, "page 0 is (layer 0"},
  };
  for (const Bad& b : cases) {
    SnapshotImage bad = image;
    b.edit(bad);
    V32SequenceCache fresh(c, &mgr);
    Status st = fresh.RestoreImage(bad);
    EXPECT_EQ(st.code(), StatusCode::kDataLoss) << b.what;
    EXPECT_NE(st.message().find(b.message), std::string::npos) << b.what << ": " << st.message();
    EXPECT_EQ(mgr.Stats().used_bytes, 0) << b.what;
  }
  KvManager small(pl, 4096);
  V32SequenceCache tight(c, &small);
  EXPECT_EQ(tight.RestoreImage(image).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(small.Stats().used_bytes, 0);
}

}  // namespace
}  // namespace dsv4::kv
