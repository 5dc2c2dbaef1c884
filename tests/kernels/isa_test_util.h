// Helpers for tests that run a kernel once per instruction-set path.
#pragma once

#include <vector>

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

}  // namespace dsv4::kernels
