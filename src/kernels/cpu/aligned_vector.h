// std::vector whose storage starts on a 64-byte boundary (a cache line, one AVX-512 register):
// the kernels' scratch buffers that hot loops stream with full-width loads. With the default
// allocator their offset within a cache line depends on the heap's history, so the same
// kernel could run with or without cache-line splits on every load from one run to the next.
// Internal to the kernels.
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace dsv4::kernels::internal {

inline constexpr std::size_t kCacheLine = 64;

template <class T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <class U>
  CacheLineAllocator(const CacheLineAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{kCacheLine}));
  }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, std::align_val_t{kCacheLine}); }
  template <class U>
  bool operator==(const CacheLineAllocator<U>&) const noexcept { return true; }
};

template <class T>
using AlignedVector = std::vector<T, CacheLineAllocator<T>>;

}  // namespace dsv4::kernels::internal
