#include "kv/page_reservation.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "core/check.h"

namespace dsv4::kv {

void PageReservation::Plan(Component c, std::vector<PageId>* table, int64_t written) {
  const PageLayout& pl = manager_->layout();
  const ComponentLayout* cl = pl.Find(c);
  const int64_t add = std::max<int64_t>(0, pl.PagesAt(c, n_) - static_cast<int64_t>(table->size()));
  const int64_t per = cl->entries_per_page;
  const bool cow = pl.EntriesAt(c, n_) > written && written % per != 0 &&
                   manager_->pool(c).refcount((*table)[written / per]) > 1;
  if (add > 0 || cow) needs_.push_back({c, table, add, cow ? written / per : -1});
  bytes_ += (add + (cow ? 1 : 0)) * cl->page_bytes();
}

Status PageReservation::Commit() {
  if (bytes_ > manager_->available_bytes()) {
    return Status::ResourceExhausted("KV budget of " + std::to_string(manager_->budget_bytes()) +
                                     " bytes cannot hold " + std::to_string(n_) +
                                     " tokens of this sequence (" + std::to_string(bytes_) +
                                     " bytes more needed, " +
                                     std::to_string(manager_->available_bytes()) + " free)");
  }
  for (const Need& need : needs_) {
    BlockPool& pool = manager_->pool(need.component);
    std::vector<PageId>& table = *need.table;
    if (need.cow_index >= 0) {
      const PageId copy = *pool.Allocate();
      PageId& shared = table[static_cast<size_t>(need.cow_index)];
      if (manager_->backing()) {
        std::memcpy(pool.data(copy), pool.data(shared), static_cast<size_t>(pool.page_bytes()));
      }
      pool.Release(shared);
      shared = copy;
    }
    for (int64_t i = 0; i < need.add; ++i) table.push_back(*pool.Allocate());
  }
  needs_.clear();
  return Status::Ok();
}

int64_t TruncateTable(KvManager* manager, Component c, std::vector<PageId>* table, int64_t n,
                      int64_t written) {
  const PageLayout& pl = manager->layout();
  const ComponentLayout* cl = pl.Find(c);
  BlockPool& pool = manager->pool(c);
  const int64_t keep_pages = pl.PagesAt(c, n), keep = pl.EntriesAt(c, n);
  while (static_cast<int64_t>(table->size()) > keep_pages) {
    pool.Release(table->back());
    table->pop_back();
  }
  if (!manager->backing()) return keep;
  const int64_t per = cl->entries_per_page;
  for (int64_t i = keep; i < written && i / per < keep_pages; ++i) {
    const PageId id = (*table)[static_cast<size_t>(i / per)];
    // Entries past n were written after any prefix snapshot: into pages of this table alone.
    DSV4_CHECK(pool.refcount(id) == 1);
    std::memset(pool.data(id) + (i % per) * cl->entry_bytes, 0, static_cast<size_t>(cl->entry_bytes));
  }
  return keep;
}

}  // namespace dsv4::kv
