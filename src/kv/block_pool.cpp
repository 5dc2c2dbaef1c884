#include "kv/block_pool.h"

#include "core/check.h"

namespace dsv4::kv {

bool KvBudget::TryCharge(int64_t bytes) {
  if (bytes > capacity_ - used_) return false;
  used_ += bytes;
  return true;
}

void KvBudget::Refund(int64_t bytes) {
  DSV4_CHECK(bytes <= used_);
  used_ -= bytes;
}

BlockPool::BlockPool(Component component, int64_t page_bytes, KvBudget* budget, bool backing)
    : component_(component), page_bytes_(page_bytes), budget_(budget), backing_(backing) {
  DSV4_CHECK(page_bytes > 0);
}

std::optional<PageId> BlockPool::Allocate() {
  if (!budget_->TryCharge(page_bytes_)) return std::nullopt;
  PageId id;
  if (!free_ids_.empty()) {
    id = free_ids_.back();
    free_ids_.pop_back();
  } else {
    id = static_cast<PageId>(refcount_.size());
    refcount_.push_back(0);
    if (backing_) memory_.emplace_back();
  }
  if (backing_) memory_[id].reset(new uint8_t[static_cast<size_t>(page_bytes_)]());
  refcount_[id] = 1;
  ++in_use_;
  return id;
}

void BlockPool::AddRef(PageId id) {
  DSV4_CHECK(refcount_[id] > 0);
  ++refcount_[id];
}

void BlockPool::Release(PageId id) {
  DSV4_CHECK(refcount_[id] > 0);
  if (--refcount_[id] > 0) return;
  if (backing_) memory_[id].reset();
  free_ids_.push_back(id);
  --in_use_;
  budget_->Refund(page_bytes_);
}

uint8_t* BlockPool::data(PageId id) {
  DSV4_DCHECK(backing_ && refcount_[id] > 0);
  return memory_[id].get();
}
const uint8_t* BlockPool::data(PageId id) const {
  DSV4_DCHECK(backing_ && refcount_[id] > 0);
  return memory_[id].get();
}

}  // namespace dsv4::kv
