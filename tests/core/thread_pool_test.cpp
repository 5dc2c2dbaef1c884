// ThreadPool: every index is visited exactly once, ranges are contiguous and respect the
// grain, claimed items run once each, and hand-offs work both while the workers poll (back-to-back jobs) and after they
// have blocked (a pause longer than the polling window).
#include "core/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace dsv4 {
namespace {

// Runs one ParallelFor over n and checks that [0, n) was covered exactly once.
void ExpectCoveredOnce(ThreadPool& pool, int64_t n, int64_t grain) {
  std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
  std::atomic<int> calls{0};
  pool.ParallelFor(n, grain, [&](int64_t begin, int64_t end) {
    ASSERT_LT(begin, end);
    calls.fetch_add(1);
    for (int64_t i = begin; i < end; ++i) hits[i].fetch_add(1);
  });
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "n " << n << " i " << i;
  EXPECT_LE(calls.load(), pool.num_threads());
}

TEST(ThreadPool, CoversEveryIndexOnceForManySizes) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.num_threads(), threads);
    for (int64_t n : {1, 2, 3, 7, 64, 1000}) {
      for (int64_t grain : {1, 4, 100}) ExpectCoveredOnce(pool, n, grain);
    }
  }
}

TEST(ThreadPool, GrainKeepsSmallLoopsOnTheCallingThread) {
  ThreadPool pool(4);
  const auto caller = std::this_thread::get_id();
  int calls = 0;
  pool.ParallelFor(10, 10, [&](int64_t begin, int64_t end) {
    EXPECT_EQ(std::this_thread::get_id(), caller);
    EXPECT_EQ(begin, 0);
    EXPECT_EQ(end, 10);
    ++calls;
  });
  EXPECT_EQ(calls, 1);
}

TEST(ThreadPool, BackToBackJobsAndJobsAfterTheWorkersBlocked) {
  ThreadPool pool(3);
  int64_t total = 0;
  for (int job = 0; job < 2000; ++job) {  // within the polling window of each other
    std::atomic<int64_t> sum{0};
    pool.ParallelFor(30, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) sum.fetch_add(i);
    });
    ASSERT_EQ(sum.load(), 435) << "job " << job;
    total += sum.load();
  }
  EXPECT_EQ(total, 2000 * 435);
  for (int job = 0; job < 3; ++job) {  // workers have given up polling and block
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ExpectCoveredOnce(pool, 300, 1);
  }
}

TEST(ThreadPool, EachRangeRunsOnItsOwnThreadIndex) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    const auto caller = std::this_thread::get_id();
    for (int64_t n : {1, 7, 64, 1000}) {
      std::vector<std::atomic<int>> uses(static_cast<size_t>(threads));
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      pool.ParallelForWithThread(n, 1, [&](int64_t begin, int64_t end, int thread) {
        ASSERT_GE(thread, 0);
        ASSERT_LT(thread, threads);
        if (thread == 0) {
          EXPECT_EQ(std::this_thread::get_id(), caller);
        }
        uses[thread].fetch_add(1);
        for (int64_t i = begin; i < end; ++i) hits[i].fetch_add(1);
      });
      for (int t = 0; t < threads; ++t) EXPECT_LE(uses[t].load(), 1) << "thread " << t;
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "n " << n << " i " << i;
    }
  }
}

// ParallelForClaimed: every item once, on a valid thread index, each thread's items in
// ascending order (claimed from one counter), for item counts below and above the threads.
TEST(ThreadPool, ClaimedItemsRunOnceInAscendingOrderPerThread) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 2, 7, 1000}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      std::vector<int64_t> last(static_cast<size_t>(threads), -1);  // written by its thread only
      std::atomic<bool> ordered{true};
      pool.ParallelForClaimed(n, [&](int64_t i, int thread) {
        ASSERT_GE(thread, 0);
        ASSERT_LT(thread, threads);
        if (i <= last[thread]) ordered = false;
        last[thread] = i;
        hits[i].fetch_add(1);
      });
      EXPECT_TRUE(ordered.load()) << "threads " << threads << " n " << n;
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "n " << n << " i " << i;
    }
  }
}

TEST(ThreadPool, DestroysCleanlyWhileWorkersPollOrBlock) {
  for (int wait_ms : {0, 5}) {
    ThreadPool pool(4);
    ExpectCoveredOnce(pool, 100, 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
  }  // the destructor joins either way
}

}  // namespace
}  // namespace dsv4
