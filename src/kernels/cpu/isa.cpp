#include "kernels/cpu/isa.h"

#include <cpuid.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/check.h"
#include "kernels/cpu/linear_internal.h"

namespace dsv4::kernels {
namespace {

// DSV4_ISA=scalar|avx2|avx512 caps the choice (benchmarks of the slower paths, debugging).
// An unknown or unsupported name is reported once and ignored.
Isa InitialIsa() {
  Isa isa = DetectIsa();
  const char* env = std::getenv("DSV4_ISA");
  if (env == nullptr || *env == '\0') return isa;
  for (Isa candidate : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Bf16}) {
    if (IsaName(candidate) == env) {
      if (IsaSupported(candidate)) return candidate;
      std::fprintf(stderr, "DSV4_ISA=%s: not supported by this CPU; using %s\n", env,
                   std::string(IsaName(isa)).c_str());
      return isa;
    }
  }
  std::fprintf(stderr, "DSV4_ISA=%s: unknown (scalar, avx2, avx512, avx512bf16); using %s\n", env,
               std::string(IsaName(isa)).c_str());
  return isa;
}

// CPUID.1:ECX bit 29 (clang 14's __builtin_cpu_supports has no "f16c").
bool HasF16c() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & (1u << 29)) != 0;
}

std::atomic<Isa>& ActiveSlot() {
  static std::atomic<Isa> slot{InitialIsa()};
  return slot;
}

}  // namespace

std::string_view IsaName(Isa isa) {
  switch (isa) {
    case Isa::kScalar:
      return "scalar";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx512:
      return "avx512";
    case Isa::kAvx512Bf16:
      return "avx512bf16";
  }
  return "?";
}

bool IsaSupported(Isa isa) {
  switch (isa) {
    case Isa::kScalar:
      return true;
    case Isa::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && HasF16c();
    case Isa::kAvx512:
      return IsaSupported(Isa::kAvx2) && __builtin_cpu_supports("avx512f") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512vnni");
    case Isa::kAvx512Bf16: {
      static const bool ok = IsaSupported(Isa::kAvx512) && __builtin_cpu_supports("avx512bf16") &&
                             __builtin_cpu_supports("avx512vbmi") &&
                             internal::Bf16DotRoundsSequentially();
      return ok;
    }
  }
  return false;
}

Isa DetectIsa() {
  if (IsaSupported(Isa::kAvx512Bf16)) return Isa::kAvx512Bf16;
  if (IsaSupported(Isa::kAvx512)) return Isa::kAvx512;
  if (IsaSupported(Isa::kAvx2)) return Isa::kAvx2;
  return Isa::kScalar;
}

Isa ActiveIsa() { return ActiveSlot().load(std::memory_order_relaxed); }

Isa ActiveIsaUpToAvx512() {
  const Isa isa = ActiveIsa();
  return isa == Isa::kAvx512Bf16 ? Isa::kAvx512 : isa;
}

void SetIsaForTesting(Isa isa) {
  DSV4_CHECK_MSG(IsaSupported(isa), IsaName(isa));
  ActiveSlot().store(isa, std::memory_order_relaxed);
}

}  // namespace dsv4::kernels
