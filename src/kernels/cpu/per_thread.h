// One value per thread of a ThreadPool, for the kernels' per-thread scratch (kernels::Workspace):
// the body of ThreadPool::ParallelForWithThread indexes it with its thread index, so no two
// concurrent ranges share a slot. Internal to the kernels.
#pragma once

#include <cstddef>
#include <vector>

#include "core/thread_pool.h"

namespace dsv4::kernels::internal {

template <class T>
class PerThread {
 public:
  // Makes room for every thread of `pool`. Call before the parallel loop, never inside it:
  // growing moves the slots.
  void Reserve(const ThreadPool& pool) {
    const size_t n = static_cast<size_t>(pool.num_threads());
    if (slots_.size() < n) slots_.resize(n);
  }
  // The slot of thread `thread` (an index ParallelForWithThread gave; Reserve'd).
  T& operator[](int thread) { return slots_[static_cast<size_t>(thread)].value; }

 private:
  // A cache line of its own per slot: threads write their slots' vector headers.
  struct alignas(64) Slot {
    T value;
  };
  std::vector<Slot> slots_;
};

}  // namespace dsv4::kernels::internal
