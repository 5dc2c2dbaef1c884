// The top-k of an indexer scan without a full score array: each pool range scores its keys a
// chunk at a time and keeps its best k as it goes (StreamingTopK), then the ranges' best are
// merged. Same contract as kernels::TopK (higher score first, ties to the lower index; the
// min(k, n) indices returned in ascending order), and the same result for any thread count:
// "better" is a strict total order on (score, index) (NaN scores excepted), so neither the
// split nor the merge order matters. Shared by the FP4 (V4) and FP8 (V3.2) indexer scans.
// Internal to the kernels.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/per_thread.h"

namespace dsv4::kernels::internal {

// Keys scored per step of a scan (a few KB of scores, reused).
inline constexpr int64_t kScanChunk = 512;

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

// ScanTopK's scratch (part of kernels::Workspace): the ranges' candidates, merged on the
// calling thread, and per pool thread its running top-k and a chunk of scores.
struct ScanThreadScratch {
  StreamingTopK top;
  std::vector<float> chunk = std::vector<float>(kScanChunk);  // FP32 [kScanChunk]
};
struct ScanScratch {
  std::vector<ScoredKey> merged;
  PerThread<ScanThreadScratch> threads;
};

// The indices of the min(k, n) best keys of [0, n), ascending, into *selected (its capacity
// is reused). score_chunk(begin, end, out, thread) writes out[i - begin] for keys
// [begin, end), at most kScanChunk of them; it is called from the pool's threads on disjoint
// ranges of at least `grain` keys, with the thread's index (ParallelForWithThread). No
// allocation once `scratch` is warm.
template <typename ScoreChunk>
void ScanTopK(ThreadPool& pool, int64_t n, int64_t k, int64_t grain, const ScoreChunk& score_chunk,
              ScanScratch* scratch, std::vector<int64_t>* selected) {
  selected->clear();
  k = std::min(k, n);
  if (k <= 0) return;
  std::vector<ScoredKey>& merged = scratch->merged;
  merged.clear();
  scratch->threads.Reserve(pool);
  std::mutex mu;
  auto scan = [&](int64_t begin, int64_t end, int thread) {
    StreamingTopK& top = scratch->threads[thread].top;
    std::vector<float>& chunk = scratch->threads[thread].chunk;
    top.Reset(k);
    for (int64_t b = begin; b < end; b += kScanChunk) {
      const int64_t e = std::min(end, b + kScanChunk);
      score_chunk(b, e, chunk.data(), thread);
      top.Push(chunk.data(), b, e - b);
    }
    const std::vector<ScoredKey>& best = top.Finish();
    std::lock_guard<std::mutex> lock(mu);
    merged.insert(merged.end(), best.begin(), best.end());
  };
  pool.ParallelForWithThread(n, grain, scan);
  // The best k of the ranges' best k; a strict total order, so the merge order is irrelevant.
  if (static_cast<int64_t>(merged.size()) > k) {
    std::nth_element(merged.begin(), merged.begin() + (k - 1), merged.end(), Better);
    merged.resize(static_cast<size_t>(k));
  }
  for (const ScoredKey& c : merged) selected->push_back(c.index);
  std::sort(selected->begin(), selected->end());
}

}  // namespace dsv4::kernels::internal
