// Run-time ISA dispatch: names, forcing, and the report of levels this CPU cannot run.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

#include "wafermesh/kernels/cpu_dispatch.hpp"

namespace wm::kernels {
namespace {

TEST(CpuDispatch, NamesRoundTripAndUnknownIsRejected) {
  for (Isa isa : kIsaAll) EXPECT_EQ(isa_parse(isa_name(isa)), isa);
  EXPECT_THROW(isa_parse("avx1024"), std::invalid_argument);
}

TEST(CpuDispatch, ScalarAlwaysSupportedAndBestIsSupported) {
  EXPECT_TRUE(isa_supported(Isa::isa_scalar));
  EXPECT_TRUE(isa_supported(isa_best()));
  for (Isa isa : kIsaAll) {
    std::printf("kernel ISA level %-6s: %s\n", isa_name(isa),
                isa_supported(isa) ? "supported, tested" : "NOT supported by this CPU, skipped");
    if (static_cast<int>(isa) > static_cast<int>(isa_best())) {
      EXPECT_FALSE(isa_supported(isa));
    }
  }
}

TEST(CpuDispatch, ForceSelectsTheLevelAndUnsupportedThrows) {
  for (Isa isa : kIsaAll) {
    if (isa_supported(isa)) {
      isa_force(isa);
      EXPECT_EQ(isa_active(), isa);
    } else {
      EXPECT_THROW(isa_force(isa), std::invalid_argument);
    }
  }
  isa_unforce();
  const char* env = std::getenv("WM_KERNEL_ISA");
  EXPECT_EQ(isa_active(), (env != nullptr && *env != '\0') ? isa_parse(env) : isa_best());
}

}  // namespace
}  // namespace wm::kernels
