#include "core/thread_pool.h"

#include <algorithm>
#include <chrono>

namespace dsv4 {

ThreadPool::ThreadPool(int num_threads) {
  if (num_threads <= 0) num_threads = std::max(1u, std::thread::hardware_concurrency());
  for (int i = 1; i < num_threads; ++i) workers_.emplace_back([this, i] { WorkerLoop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
  }
  work_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

namespace {

// Polls `ready` for up to `ns` nanoseconds; true once it holds.
template <class Pred>
bool SpinFor(int64_t ns, Pred ready) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::nanoseconds(ns);
  while (true) {
    for (int i = 0; i < 16; ++i) {
      if (ready()) return true;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    std::this_thread::yield();  // let a thread that shares this core run
    if (std::chrono::steady_clock::now() >= deadline) return ready();
  }
}

}  // namespace

void ThreadPool::ParallelFor(int64_t n, int64_t grain,
                             FunctionRef<void(int64_t, int64_t)> fn) {
  ParallelForWithThread(n, grain, [fn](int64_t begin, int64_t end, int) { fn(begin, end); });
}

void ThreadPool::ParallelForClaimed(int64_t n, FunctionRef<void(int64_t, int)> fn) {
  std::atomic<int64_t> next{0};
  ParallelForWithThread(std::min<int64_t>(num_threads(), n), 1, [&](int64_t, int64_t, int t) {
    for (int64_t i = next++; i < n; i = next++) fn(i, t);
  });
}

void ThreadPool::ParallelForWithThread(int64_t n, int64_t grain,
                                       FunctionRef<void(int64_t, int64_t, int)> fn) {
  if (n <= 0) return;
  const int64_t threads = num_threads();
  const int64_t chunk = std::max<int64_t>(std::max<int64_t>(grain, 1), (n + threads - 1) / threads);
  if (chunk >= n || workers_.empty()) {
    fn(0, n, 0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = &fn;
    job_n_ = n;
    job_chunk_ = chunk;
    pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  work_cv_.notify_all();
  fn(0, std::min(chunk, n), 0);  // the caller takes range 0
  auto done = [this] { return pending_.load(std::memory_order_acquire) == 0; };
  if (!SpinFor(kSpinNs, done)) {
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, done);
  }
  job_ = nullptr;
}

void ThreadPool::WorkerLoop(int index) {
  uint64_t seen = 0;
  auto has_work = [&] {
    return stop_.load(std::memory_order_acquire) ||
           generation_.load(std::memory_order_acquire) != seen;
  };
  while (true) {
    if (!SpinFor(kSpinNs, has_work)) {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, has_work);
    }
    if (stop_.load(std::memory_order_acquire)) return;
    seen = generation_.load(std::memory_order_acquire);
    const auto* fn = job_;
    const int64_t begin = index * job_chunk_, end = std::min(job_n_, begin + job_chunk_);
    if (begin < end) (*fn)(begin, end, index);  // worker `index` runs range `index`
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mu_);  // the caller may be about to block
      done_cv_.notify_one();
    }
  }
}

}  // namespace dsv4
