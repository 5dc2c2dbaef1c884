#include "kernels/cpu/parallel.h"

#include <algorithm>
#include <atomic>

namespace dsv4::kernels {
namespace {
std::atomic<int64_t> min_task_work{int64_t{1} << 17};
}  // namespace

int64_t MinTaskWork() { return min_task_work.load(std::memory_order_relaxed); }

void SetMinTaskWorkForTesting(int64_t work) {
  min_task_work.store(std::max<int64_t>(1, work), std::memory_order_relaxed);
}

int64_t GrainForWork(int64_t work_per_item) {
  return std::max<int64_t>(1, MinTaskWork() / std::max<int64_t>(1, work_per_item));
}

}  // namespace dsv4::kernels
