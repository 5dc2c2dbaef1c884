#include "kv/block_pool.h"

#include <algorithm>
#include <cstring>

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

namespace {
constexpr int64_t kMaxSlabBytes = int64_t{64} << 20;
}  // namespace

BlockPool::BlockPool(Component component, int64_t page_bytes, KvBudget* budget, bool backing)
    : component_(component),
      page_bytes_(page_bytes),
      budget_(budget),
      backing_(backing),
      stride_((page_bytes + 63) / 64 * 64) {
  DSV4_CHECK(page_bytes > 0);
}

void BlockPool::AddSlab() {
  const int64_t last = slabs_.empty() ? 0 : static_cast<int64_t>(slabs_.back().size());
  const int64_t want = std::min(kMaxSlabBytes, std::max<int64_t>(kHugePageBytes, 2 * last));
  const int64_t pages = std::max<int64_t>(1, want / stride_);
  slabs_.emplace_back(static_cast<size_t>(pages * stride_), LargeBuffer::Fill::kNone);
  slab_free_pages_ = pages;
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
    if (backing_) {
      if (slab_free_pages_ == 0) AddSlab();
      LargeBuffer& slab = slabs_.back();
      const int64_t slab_pages = static_cast<int64_t>(slab.size()) / stride_;
      memory_.push_back(reinterpret_cast<uint8_t*>(slab.data()) +
                        (slab_pages - slab_free_pages_) * stride_);
      --slab_free_pages_;
    }
  }
  if (backing_) std::memset(memory_[id], 0, static_cast<size_t>(page_bytes_));
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
  free_ids_.push_back(id);
  --in_use_;
  budget_->Refund(page_bytes_);
}

uint8_t* BlockPool::data(PageId id) {
  DSV4_DCHECK(backing_ && refcount_[id] > 0);
  return memory_[id];
}
const uint8_t* BlockPool::data(PageId id) const {
  DSV4_DCHECK(backing_ && refcount_[id] > 0);
  return memory_[id];
}

}  // namespace dsv4::kv
