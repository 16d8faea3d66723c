#include "wafermesh/kernels/cpu_dispatch.hpp"

#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "isa_kernels.hpp"

namespace wm::kernels {
namespace {

constexpr int kNotForced = -1;
std::atomic<int> g_forced{kNotForced};

// WM_KERNEL_ISA, parsed once. An unsupported or unknown value is an error, not a silent fallback:
// a user who pins a level expects measurements at that level.
Isa isa_from_env() {
  static const Isa level = [] {
    const char* env = std::getenv("WM_KERNEL_ISA");
    if (env == nullptr || *env == '\0') return isa_best();
    const Isa isa = isa_parse(env);
    if (!isa_supported(isa)) {
      throw std::invalid_argument(std::string("WM_KERNEL_ISA=") + env +
                                  ": this CPU does not support it (best supported: " +
                                  isa_name(isa_best()) + "); unset it or pick a lower level");
    }
    return isa;
  }();
  return level;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::isa_scalar: return "scalar";
    case Isa::isa_avx2: return "avx2";
    case Isa::isa_avx512: return "avx512";
  }
  return "unknown";
}

Isa isa_parse(std::string_view name) {
  for (Isa isa : kIsaAll) {
    if (name == isa_name(isa)) return isa;
  }
  throw std::invalid_argument("unknown kernel ISA level '" + std::string(name) +
                              "'; expected one of: scalar, avx2, avx512");
}

bool isa_supported(Isa isa) {
  switch (isa) {
    case Isa::isa_scalar: return true;
    case Isa::isa_avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::isa_avx512:
      return isa_supported(Isa::isa_avx2) && __builtin_cpu_supports("avx512f") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512vnni");
  }
  return false;
}

Isa isa_best() {
  static const Isa best = [] {
    Isa b = Isa::isa_scalar;
    for (Isa isa : kIsaAll) {
      if (isa_supported(isa)) b = isa;
    }
    return b;
  }();
  return best;
}

Isa isa_active() {
  const int forced = g_forced.load(std::memory_order_relaxed);
  if (forced != kNotForced) return static_cast<Isa>(forced);
  return isa_from_env();
}

void isa_force(Isa isa) {
  if (!isa_supported(isa)) {
    throw std::invalid_argument(std::string("kernel ISA level '") + isa_name(isa) +
                                "' is not supported by this CPU (best: " + isa_name(isa_best()) + ")");
  }
  g_forced.store(static_cast<int>(isa), std::memory_order_relaxed);
}

void isa_unforce() { g_forced.store(kNotForced, std::memory_order_relaxed); }

namespace detail {
const IsaKernels& isa_kernels() {
  return by_isa(&isa_kernels_scalar, &isa_kernels_avx2, &isa_kernels_avx512)();
}
}  // namespace detail

}  // namespace wm::kernels
