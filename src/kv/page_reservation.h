// All-or-nothing growth of a sequence's page tables, shared by the paged caches (V4, V3.2):
// every table is planned first (pages to append up to n tokens, plus a copy of a shared page
// that new entries will be written into: copy on write after a prefix snapshot), the bytes
// checked against the budget, and only then allocated, so a reservation cannot fail half way.
// TruncateTable is the way back (a speculative rollback). Not thread-safe: the engine thread
// owns the manager.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "kv/kv_manager.h"

namespace dsv4::kv {

class PageReservation {
 public:
  // Plans growing a sequence to `n` tokens on `manager` (which must outlive the plan).
  PageReservation(KvManager* manager, int64_t n) : manager_(manager), n_(n) {}

  // One layer's table of component `c`, of which `written` entries hold data: appends pages
  // up to PagesAt(c, n); copies the page holding entry `written` first when more entries
  // will be written and that page is shared. `table` must outlive Commit.
  void Plan(Component c, std::vector<PageId>* table, int64_t written);

  int64_t bytes() const { return bytes_; }
  // Allocates everything planned: ResourceExhausted (nothing allocated) when the budget
  // cannot cover bytes().
  Status Commit();

 private:
  struct Need {
    Component component;
    std::vector<PageId>* table;
    int64_t add;          // pages to append
    int64_t cow_index;    // page index to copy before writing, or -1
  };
  KvManager* manager_;
  int64_t n_;
  int64_t bytes_ = 0;
  std::vector<Need> needs_;
};

// Takes one layer's table of component `c`, of which `written` entries hold data, back to
// what n tokens need: releases its pages past PagesAt(c, n) and zeroes entries
// [EntriesAt(c, n), written) in the pages kept, so that the table reads as one that never held
// them (pages are allocated zeroed). Returns EntriesAt(c, n), the entries it holds now.
int64_t TruncateTable(KvManager* manager, Component c, std::vector<PageId>* table, int64_t n,
                      int64_t written);

}  // namespace dsv4::kv
