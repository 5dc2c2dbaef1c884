// Fixed-size KV pages of one cache component, drawn from a byte budget shared by every pool
// of a KvManager. Pages are reference counted (prefix sharing) and freed at zero. A pool
// without backing memory only accounts (admission studies at real dimensions).
// Not thread-safe: the engine thread owns every pool.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "kv/page_layout.h"

namespace dsv4::kv {

using PageId = int32_t;

// Bytes the pools may hold together.
class KvBudget {
 public:
  explicit KvBudget(int64_t capacity_bytes) : capacity_(capacity_bytes) {}
  bool TryCharge(int64_t bytes);
  void Refund(int64_t bytes);
  int64_t capacity() const { return capacity_; }
  int64_t used() const { return used_; }
  int64_t available() const { return capacity_ - used_; }

 private:
  int64_t capacity_;
  int64_t used_ = 0;
};

class BlockPool {
 public:
  BlockPool(Component component, int64_t page_bytes, KvBudget* budget, bool backing);

  // A new page with refcount 1; nullopt when the budget cannot cover page_bytes().
  std::optional<PageId> Allocate();
  void AddRef(PageId id);
  // Drops one reference; the page is freed (memory and budget) at zero.
  void Release(PageId id);

  uint8_t* data(PageId id);
  const uint8_t* data(PageId id) const;
  int32_t refcount(PageId id) const { return refcount_[id]; }

  Component component() const { return component_; }
  int64_t page_bytes() const { return page_bytes_; }
  int64_t pages_in_use() const { return in_use_; }
  int64_t bytes_in_use() const { return in_use_ * page_bytes_; }

 private:
  Component component_;
  int64_t page_bytes_;
  KvBudget* budget_;
  bool backing_;
  std::vector<std::unique_ptr<uint8_t[]>> memory_;  // [page id] (empty without backing)
  std::vector<int32_t> refcount_;                    // [page id]; 0 = free
  std::vector<PageId> free_ids_;
  int64_t in_use_ = 0;
};

}  // namespace dsv4::kv
