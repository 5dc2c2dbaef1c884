#include "kv/page_reservation.h"

#include <algorithm>
#include <cstring>
#include <string>

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

}  // namespace dsv4::kv
