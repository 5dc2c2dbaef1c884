// Helpers for tests that run a kernel once per instruction-set path.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <span>
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/thread_pool.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/parallel.h"

namespace dsv4::kernels {

// Every ISA this CPU can run, scalar first.
inline std::vector<Isa> SupportedIsas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Bf16}) {
    if (IsaSupported(isa)) out.push_back(isa);
  }
  return out;
}

// Forces an ISA for a scope and restores the previous one.
class ScopedIsa {
 public:
  explicit ScopedIsa(Isa isa) : saved_(ActiveIsa()) { SetIsaForTesting(isa); }
  ~ScopedIsa() { SetIsaForTesting(saved_); }
  ScopedIsa(const ScopedIsa&) = delete;
  ScopedIsa& operator=(const ScopedIsa&) = delete;

 private:
  Isa saved_;
};

// Makes kernels split even tiny calls over the pool for a scope (covers tile and range
// boundaries between threads), then restores the default.
class ScopedFineSplit {
 public:
  ScopedFineSplit() : saved_(MinTaskWork()) { SetMinTaskWorkForTesting(1); }
  ~ScopedFineSplit() { SetMinTaskWorkForTesting(saved_); }
  ScopedFineSplit(const ScopedFineSplit&) = delete;
  ScopedFineSplit& operator=(const ScopedFineSplit&) = delete;

 private:
  int64_t saved_;
};

// Visible counts of a group of `count` indexer queries over n keys: on even trials a prefill
// chunk's (consecutive positions, one more key every `ratio` tokens), on odd ones arbitrary
// (0, n, repeats).
inline std::vector<int64_t> GroupVisible(int64_t n, int64_t count, int64_t ratio, int trial,
                                         Rng& rng) {
  std::vector<int64_t> visible(static_cast<size_t>(count));
  const int64_t pos0 = rng.Below(ratio * n + 1);
  for (int64_t j = 0; j < count; ++j) {
    visible[j] = trial % 2 == 0 ? std::min(n, (pos0 + j + 1) / ratio)
                 : rng.Below(4) == 0 ? (rng.Below(2) == 0 ? 0 : n)
                                     : rng.Below(n + 1);
  }
  return visible;
}

// A grouped indexer top-k on every ISA and pool: group(pool, top) (the scan of the whole
// group into top[0, expected.size())) must give expected, and alone(pool, j, &one) (query j
// scanned by itself) the same as the group gave it.
template <class Group, class Alone>
void ExpectGroupTopKOnEveryIsa(std::span<ThreadPool* const> pools,
                               const std::vector<std::vector<int64_t>>& expected,
                               const Group& group, const Alone& alone, const std::string& what) {
  for (Isa isa : SupportedIsas()) {
    ScopedIsa scoped(isa);
    for (ThreadPool* pool : pools) {
      std::vector<std::vector<int64_t>> top(expected.size(), {-1});  // stale contents replaced
      group(*pool, top.data());
      for (size_t j = 0; j < expected.size(); ++j) {
        ASSERT_EQ(top[j], expected[j]) << IsaName(isa) << " " << what << " threads "
                                       << pool->num_threads() << " query " << j << " of "
                                       << expected.size();
        std::vector<int64_t> one;
        alone(*pool, static_cast<int64_t>(j), &one);
        ASSERT_EQ(one, top[j]) << IsaName(isa) << " " << what << " query " << j << " alone";
      }
    }
  }
}

}  // namespace dsv4::kernels
