#pragma once
// Run-time choice of the instruction-set level the kernels use.
//
// The library is compiled for generic x86-64; AVX2 and AVX-512 kernels live in their own
// translation units and are reached only through this dispatch, so one binary runs everywhere.
// The level is, in order of precedence: isa_force() (tests), the environment variable
// WM_KERNEL_ISA=scalar|avx2|avx512 (read once, on first use), else the best the CPU supports.
#include <string_view>

namespace wm::kernels {

// Ordered: a higher level needs a superset of the CPU features of every lower one.
//   isa_scalar  portable C++ (base x86-64, SSE2 at most through auto-vectorisation)
//   isa_avx2    AVX2 + FMA; the 2-bit kernel uses maddubs
//   isa_avx512  AVX-512 F/BW/VL + AVX512-VNNI; the 2-bit kernel uses vpdpbusd
enum class Isa : int { isa_scalar = 0, isa_avx2 = 1, isa_avx512 = 2 };

inline constexpr Isa kIsaAll[] = {Isa::isa_scalar, Isa::isa_avx2, Isa::isa_avx512};

// "scalar", "avx2", "avx512".
const char* isa_name(Isa isa);
// Inverse of isa_name; throws std::invalid_argument naming the bad value and the accepted ones.
Isa isa_parse(std::string_view name);
// True when both the CPU and the OS (saved register state) support every feature of the level.
bool isa_supported(Isa isa);
// Highest supported level.
Isa isa_best();
// Level the kernels dispatch to now.
Isa isa_active();
// Pins the level (tests run every supported level in turn). Throws std::invalid_argument if the
// CPU lacks it. Not synchronised with kernels running on other threads: call between kernels.
void isa_force(Isa isa);
// Drops a previous isa_force: back to WM_KERNEL_ISA or the best level.
void isa_unforce();

// The variant of a kernel for the active ISA level.
template <class T>
T by_isa(T scalar, T avx2, T avx512) {
  switch (isa_active()) {
    case Isa::isa_avx512: return avx512;
    case Isa::isa_avx2: return avx2;
    case Isa::isa_scalar: break;
  }
  return scalar;
}

}  // namespace wm::kernels
