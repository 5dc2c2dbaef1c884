#include "core/large_buffer.h"

#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <new>

namespace dsv4 {

void LargeBuffer::Free::operator()(std::byte* p) const { std::free(p); }

LargeBuffer::LargeBuffer(size_t bytes) : size_(bytes) {
  const bool huge = bytes >= kHugePageBytes;
  void* p = nullptr;
  if (posix_memalign(&p, huge ? kHugePageBytes : 64, bytes == 0 ? 1 : bytes) != 0) {
    throw std::bad_alloc();
  }
  data_.reset(static_cast<std::byte*>(p));
#ifdef MADV_HUGEPAGE
  // Before the first touch, so the zero fill below faults whole huge pages in. A kernel
  // without THP refuses it (EINVAL): the buffer then simply keeps small pages.
  if (huge) huge_ = madvise(p, bytes, MADV_HUGEPAGE) == 0;
#endif
  std::memset(p, 0, bytes);
}

}  // namespace dsv4
