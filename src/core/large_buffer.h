// Buffers of weights streamed in full every step (the MXFP4 experts repacked by the loader,
// dequantised or promoted copies): at least 2 MiB aligned and marked for transparent huge
// pages (madvise MADV_HUGEPAGE, which a kernel in THP mode "madvise", as this project's
// machine is, needs before it gives any). With 4 KiB
// pages each 4 KiB of a streamed matrix costs a TLB miss and a page walk; with 2 MiB pages one
// per 2 MiB (V4-Flash `dsv4 bench layer`, this machine: decode B=1 585-610 -> 499-523 ms,
// B=8 2,291-2,332 -> 2,099-2,157, prefill 512 71.9-72.5 -> 64.1-70.3 s). Where the kernel
// offers no huge pages the buffer is an ordinary aligned one. Linux only (madvise).
#pragma once

#include <cstddef>
#include <memory>

namespace dsv4 {

// The granule huge pages come in (x86-64, the 2 MiB PMD page).
inline constexpr size_t kHugePageBytes = size_t{2} << 20;

// An owned, zero-filled byte buffer; from kHugePageBytes up aligned to it and madvised for
// huge pages (the last partial 2 MiB stays in small pages), below that 64-byte aligned.
// Throws std::bad_alloc when the allocation fails, as operator new does.
class LargeBuffer {
 public:
  LargeBuffer() = default;
  explicit LargeBuffer(size_t bytes);

  std::byte* data() { return data_.get(); }
  const std::byte* data() const { return data_.get(); }
  size_t size() const { return size_; }
  // Whether the buffer was marked for huge pages (the kernel may still back it in small ones).
  bool huge_pages_requested() const { return huge_; }

 private:
  struct Free {
    void operator()(std::byte* p) const;
  };
  std::unique_ptr<std::byte, Free> data_;
  size_t size_ = 0;
  bool huge_ = false;
};

}  // namespace dsv4
