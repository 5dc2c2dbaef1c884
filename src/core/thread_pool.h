// A fixed pool of worker threads for data-parallel kernels. Work is split into contiguous,
// equally sized ranges by index, so which thread computes an element never changes what is
// computed: every element's arithmetic is the same for any thread count (deterministic).
// Not reentrant: ParallelFor must not be called from inside a ParallelFor body.
//
// Hand-off latency: a decode step issues hundreds of short parallel loops, and waking a thread
// blocked on a condition variable costs several µs (far more on a VM whose idle vCPU was
// descheduled). So a worker that has just finished a range keeps polling for the next job for
// a short while (kSpinNs) before it blocks, and the caller polls for the workers' completion
// the same way; both then fall back to the condition variables. Polling yields the core every
// few checks: with more runnable threads than cores, a tight spin would starve the thread it
// waits for (measured on this 2-vCPU VM under load: a 100 µs pause-only spin made decode 1.3x
// slower than no spin; 20 µs with yields is 1.07x faster than no spin).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "core/function_ref.h"

namespace dsv4 {

class ThreadPool {
 public:
  // num_threads >= 1 counts the calling thread; 0 means std::thread::hardware_concurrency().
  explicit ThreadPool(int num_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(begin, end) on disjoint ranges covering [0, n); returns when all are done.
  // Ranges are at least `grain` long (except the last), so tiny loops stay on one thread.
  // `fn` is referenced, not copied (no allocation per call).
  void ParallelFor(int64_t n, int64_t grain, FunctionRef<void(int64_t, int64_t)> fn);

  // The same, and fn also gets the index in [0, num_threads()) of the thread that runs the
  // range (0: the caller). Concurrent ranges always have distinct indices, so per-thread
  // scratch owned by the caller and indexed by it needs no locking (kernels::Workspace).
  void ParallelForWithThread(int64_t n, int64_t grain,
                             FunctionRef<void(int64_t, int64_t, int)> fn);

  // Calls fn(i, thread) for every i in [0, n), the items claimed one at a time in ascending
  // order from a shared counter by up to num_threads() threads as they come free (uneven
  // items, late threads). Which thread runs an item varies from call to call: fn's result
  // must not depend on it (per-thread scratch by index, as above).
  void ParallelForClaimed(int64_t n, FunctionRef<void(int64_t, int)> fn);

 private:
  void WorkerLoop(int index);

  // How long a worker (or the waiting caller) polls before blocking.
  static constexpr int64_t kSpinNs = 20'000;

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  // The job: written by the caller before it publishes generation_ (release), read by the
  // workers after they see it change (acquire).
  const FunctionRef<void(int64_t, int64_t, int)>* job_ = nullptr;
  int64_t job_n_ = 0;
  int64_t job_chunk_ = 0;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};  // workers yet to finish the current job
  std::atomic<bool> stop_{false};
};

}  // namespace dsv4
