// Which instruction set the CPU kernels use. Chosen once per process: the best the CPU
// supports (cpuid via __builtin_cpu_supports), unless DSV4_ISA names a lower one (read here
// and nowhere else) or a test forces one with SetIsaForTesting. Every ISA computes the same
// bits (one canonical FP32 reduction order, see linear.h), so the choice changes speed only.
// The SIMD code is compiled with function-level target attributes, so the binary still runs
// on CPUs without AVX2 / AVX-512.
#pragma once

#include <string_view>

namespace dsv4::kernels {

enum class Isa {
  kScalar,  // plain C++ (the reference the SIMD paths are tested against)
  kAvx2,    // AVX2 + F16C + FMA (256-bit)
  kAvx512,  // AVX-512 F/BW/VL/VNNI (+ the AVX2 set)
  // kAvx512 + AVX512_BF16 + VBMI, whose VDPBF16PS the CPU was checked at start-up to round
  // as two sequential FMAs (odd element first): with exact products that is the canonical
  // lane order at 32 multiply-adds per instruction (kernels/cpu/simd.h).
  kAvx512Bf16,
};

// Lower-case name: "scalar", "avx2", "avx512", "avx512bf16".
std::string_view IsaName(Isa isa);

// The best ISA this CPU supports.
Isa DetectIsa();

// Whether this CPU can run `isa`.
bool IsaSupported(Isa isa);

// The ISA the kernels use now. Thread-safe.
Isa ActiveIsa();

// ActiveIsa(), except that kAvx512Bf16 counts as kAvx512: for kernels without a BF16 path.
Isa ActiveIsaUpToAvx512();

// One of a kernel's per-ISA entry points, for ActiveIsa().
template <class Fn>
Fn ForActiveIsa(Fn scalar, Fn avx2, Fn avx512, Fn avx512bf16) {
  switch (ActiveIsa()) {
    case Isa::kAvx512Bf16:
      return avx512bf16;
    case Isa::kAvx512:
      return avx512;
    case Isa::kAvx2:
      return avx2;
    case Isa::kScalar:
      break;
  }
  return scalar;
}

// Forces `isa` for the rest of the process (tests and benchmarks compare the paths).
// DSV4_CHECKs that the CPU supports it. Not meant to race with running kernels.
void SetIsaForTesting(Isa isa);

}  // namespace dsv4::kernels
