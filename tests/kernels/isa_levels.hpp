#pragma once
// Runs a test body once per kernel ISA level, pinned with isa_force. Levels the CPU lacks are
// printed as skipped (never silently dropped).
#include <gtest/gtest.h>
#include <omp.h>

#include <cstdio>

#include "wafermesh/kernels/cpu_dispatch.hpp"

namespace wm::kernels::testing {

template <class Body>
void for_each_isa(Body&& body) {
  for (Isa isa : kIsaAll) {
    if (!isa_supported(isa)) {
      std::printf("[  SKIPPED ] ISA level %s: this CPU lacks it\n", isa_name(isa));
      continue;
    }
    isa_force(isa);
    SCOPED_TRACE(std::string("isa=") + isa_name(isa));
    body(isa);
  }
  isa_unforce();
}

// Thread counts every multi-threaded kernel is checked at (results must not depend on them).
inline constexpr int kThreadCounts[] = {1, 2, 3};

template <class Body>
void for_each_threads(Body&& body) {
  const int saved = omp_get_max_threads();
  for (int threads : kThreadCounts) {
    omp_set_num_threads(threads);
    SCOPED_TRACE("threads=" + std::to_string(threads));
    body(threads);
  }
  omp_set_num_threads(saved);
}

}  // namespace wm::kernels::testing
