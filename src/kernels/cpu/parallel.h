// How finely the kernels split work over the thread pool. Waking a worker costs ~6 µs when it
// was just busy and far more after it idled (on a VM the idle vCPU may be descheduled), so a
// task should carry enough work to pay for that: small linears and short attention calls of
// a decode step run on the calling thread alone. Which thread computes an element never
// changes its bits, so this only moves time.
#pragma once

#include <cstdint>

namespace dsv4::kernels {

// Multiply-adds a task should at least carry: 2^17 (a few µs on one core) unless a test
// lowered it to cover the split itself.
int64_t MinTaskWork();

// Tests set 1 to make every kernel split its work as finely as the pool allows.
void SetMinTaskWorkForTesting(int64_t work);

// ParallelFor grain for items of `work_per_item` multiply-adds each.
int64_t GrainForWork(int64_t work_per_item);

}  // namespace dsv4::kernels
