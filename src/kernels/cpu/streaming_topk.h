// The top-k of an indexer scan without a full score array: each pool range scores its keys a
// chunk at a time and keeps its best k as it goes (StreamingTopK), then the ranges' best are
// merged. Same contract as kernels::TopK (higher score first, ties to the lower index; the
// min(k, n) indices returned in ascending order), and the same result for any thread count:
// "better" is a strict total order on (score, index) (NaN scores excepted), so neither the
// split nor the merge order matters. A scan serves a group of queries at once (each with its
// own streaming top-k over its own visible range), so the keys are read and split over the
// pool once per group. Shared by the FP4 (V4) and FP8 (V3.2) indexer scans.
// Internal to the kernels.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <span>
#include <vector>

#include "core/grow.h"
#include "core/thread_pool.h"
#include "kernels/cpu/per_thread.h"

namespace dsv4::kernels::internal {

// Keys scored per step of a scan (a few KB of scores, reused).
inline constexpr int64_t kScanChunk = 512;
// The most keys a pool thread claims at a time in a split scan (ScanTopK): ~0.2 ms of a V4
// scan on one thread, so a thread that starts late (a worker's wake-up on a VM) or runs slower
// (a busy or slower core) leaves at most about that much to the others.
inline constexpr int64_t kScanBlock = 8 * kScanChunk;

// ScanTopK's claim size for n keys on `threads` threads, grain as ScanTopK's: n when the scan
// stays on one thread, else at least 4 blocks per thread (of whole 16-key tiles) up to
// kScanBlock keys.
inline int64_t ScanBlockKeys(int64_t n, int64_t threads, int64_t grain) {
  if (threads <= 1 || n < 2 * grain) return std::max<int64_t>(n, 1);
  const int64_t block = std::max(grain, std::min(kScanBlock, (n + 4 * threads - 1) / (4 * threads)));
  return (block + 15) / 16 * 16;
}

struct ScoredKey {
  float score;
  int64_t index;
};

// a ranks above b: higher score, or the same score and a lower index.
inline bool Better(const ScoredKey& a, const ScoredKey& b) {
  return a.score > b.score || (a.score == b.score && a.index < b.index);
}

// The best k of a stream of candidates that arrives in ascending index order. Once k are
// kept, a newcomer must beat the worst kept score strictly: on a tie its index is higher than
// every kept one's, so it ranks below them.
class StreamingTopK {
 public:
  void Reset(int64_t k) {
    k_ = k;
    full_ = false;
    kept_.clear();
    kept_.reserve(static_cast<size_t>(2 * k + kScanChunk));
  }
  // scores FP32 [count]: the scores of keys first .. first + count - 1.
  void Push(const float* scores, int64_t first, int64_t count) {
    for (int64_t j = 0; j < count; ++j) {
      if (full_ && !(scores[j] > threshold_)) continue;
      kept_.push_back({scores[j], first + j});
      if (static_cast<int64_t>(kept_.size()) >= 2 * k_) Prune();
    }
  }
  // Leaves the best min(k, pushed) candidates (in no particular order).
  const std::vector<ScoredKey>& Finish() {
    if (static_cast<int64_t>(kept_.size()) > k_) Prune();
    return kept_;
  }

 private:
  void Prune() {
    std::nth_element(kept_.begin(), kept_.begin() + (k_ - 1), kept_.end(), Better);
    kept_.resize(static_cast<size_t>(k_));
    threshold_ = kept_.back().score;  // the k-th best: the worst score kept
    full_ = true;
  }

  int64_t k_ = 0;
  bool full_ = false;
  float threshold_ = 0.0f;
  std::vector<ScoredKey> kept_;
};

// ScanTopK's scratch (part of kernels::Workspace): per query the ranges' candidates, merged
// on the calling thread, and per pool thread a running top-k per query and a chunk of scores.
// Grow-only (core/grow.h): a warm scratch serves any group size up to its largest.
struct ScanThreadScratch {
  std::vector<StreamingTopK> tops;  // [queries]
  std::vector<float> chunk;         // FP32 [queries, kScanChunk]
};
struct ScanScratch {
  std::vector<std::vector<ScoredKey>> merged;  // [queries]
  PerThread<ScanThreadScratch> threads;
};

// A group of queries over one key sequence, query j seeing keys [0, visible[j]) (the tokens of
// a prefill chunk): into selected[j] the indices of the min(k, visible[j]) best keys of its
// range, ascending (its capacity is reused); for each query the same as a scan of it alone.
// The key range [0, max visible) is split over the pool once for the whole group.
// score_chunk(begin, end, out, thread) writes out[j * kScanChunk + i - begin] for the keys i
// in [begin, min(end, visible[j])) of every query j (at most kScanChunk keys); it is called
// from the pool's threads on disjoint ranges, with the thread's index (ParallelForWithThread).
// The pool's threads claim blocks of ScanBlockKeys keys (at least `grain`) in ascending order
// from a shared counter as they come free (each thread's own stream stays ascending, as
// StreamingTopK needs), so which thread scores a key varies from call to call but never the
// result. No allocation once `scratch` is warm.
template <typename ScoreChunk>
void ScanTopK(ThreadPool& pool, std::span<const int64_t> visible, int64_t k, int64_t grain,
              const ScoreChunk& score_chunk, ScanScratch* scratch, std::vector<int64_t>* selected) {
  const int64_t queries = static_cast<int64_t>(visible.size());
  int64_t n = 0;
  for (int64_t v : visible) n = std::max(n, v);
  auto k_of = [&](int64_t j) { return std::max<int64_t>(0, std::min(k, visible[j])); };
  GrowTo(scratch->merged, queries);
  for (int64_t j = 0; j < queries; ++j) scratch->merged[j].clear();
  scratch->threads.Reserve(pool);
  std::mutex mu;
  const int64_t block = ScanBlockKeys(n, pool.num_threads(), grain);
  const int64_t blocks = (n + block - 1) / block;
  struct alignas(64) Counter {  // a cache line of its own: claims don't evict the shared locals
    std::atomic<int64_t> next{0};  // the next block to claim
  } claims;
  auto scan = [&](int64_t, int64_t, int thread) {
    ScanThreadScratch& own = scratch->threads[thread];
    StreamingTopK* tops = GrowTo(own.tops, queries);
    float* chunk = GrowTo(own.chunk, queries * kScanChunk);
    for (int64_t j = 0; j < queries; ++j) tops[j].Reset(k_of(j));
    for (int64_t i; (i = claims.next.fetch_add(1, std::memory_order_relaxed)) < blocks;) {
      const int64_t end = std::min(n, (i + 1) * block);
      for (int64_t b = i * block; b < end; b += kScanChunk) {
        const int64_t e = std::min(end, b + kScanChunk);
        score_chunk(b, e, chunk, thread);
        for (int64_t j = 0; j < queries; ++j) {
          const int64_t seen = std::min(e, visible[j]) - b;
          if (seen > 0 && k_of(j) > 0) tops[j].Push(chunk + j * kScanChunk, b, seen);
        }
      }
    }
    std::lock_guard<std::mutex> lock(mu);
    for (int64_t j = 0; j < queries; ++j) {
      const std::vector<ScoredKey>& best = tops[j].Finish();
      scratch->merged[j].insert(scratch->merged[j].end(), best.begin(), best.end());
    }
  };
  // One range per thread (the caller's first): each claims blocks until none is left.
  if (n > 0 && k > 0) {
    pool.ParallelForWithThread(std::min<int64_t>(pool.num_threads(), blocks), 1, scan);
  }
  for (int64_t j = 0; j < queries; ++j) {
    // The best k of the ranges' best k; a strict total order, so the merge order is irrelevant.
    std::vector<ScoredKey>& merged = scratch->merged[j];
    const int64_t kj = k_of(j);
    if (static_cast<int64_t>(merged.size()) > kj && kj > 0) {
      std::nth_element(merged.begin(), merged.begin() + (kj - 1), merged.end(), Better);
    }
    merged.resize(static_cast<size_t>(std::min<int64_t>(kj, static_cast<int64_t>(merged.size()))));
    selected[j].clear();
    for (const ScoredKey& c : merged) selected[j].push_back(c.index);
    std::sort(selected[j].begin(), selected[j].end());
  }
}

}  // namespace dsv4::kernels::internal
