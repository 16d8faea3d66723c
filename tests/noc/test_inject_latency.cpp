// Injected latency holds inter-rank messages back in real time and changes no virtual figure.
#include <gtest/gtest.h>

#include "fabric_test_util.hpp"
#include "wafermesh/mesh/mpi_traits.hpp"

using namespace wm;
using namespace wm::test;

namespace {
struct Timed {
  double wall_s;
  std::vector<PeCounters> pes;
  uint64_t steps_latency_cycles;  // sum over steps of the longest modelled latency
};

Timed run(double ns_per_cycle) {
  MachineParams mp = small_machine(16, 4);
  mp.inject_ns_per_cycle = ns_per_cycle;
  Fabric f(MPI_COMM_WORLD, mp);
  TileBuf<float> b(f, f.mesh().full(), 64, "t");
  TransferPlan p = plan_shift(f, f.mesh().full(), Axis::X, 1, true, LinePerm::natural(16), b.bytes_per_pe());
  constexpr int kSteps = 20;
  MPI_Barrier(MPI_COMM_WORLD);
  const double t0 = MPI_Wtime();
  for (int i = 0; i < kSteps; ++i) f.execute(p, b.view(), b.view());
  double wall = MPI_Wtime() - t0;
  MPI_Allreduce(MPI_IN_PLACE, &wall, 1, mpi_type<double>(), MPI_MAX, MPI_COMM_WORLD);
  return {wall, f.gather_counters(f.mesh().full()), kSteps * p.max_latency_cycles()};
}
}  // namespace

TEST(InjectLatency, WallTimeGrowsVirtualFiguresDoNot) {
  int ranks = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  ASSERT_GE(ranks, 2) << "needs inter-rank messages";
  const Timed off = run(0.0);
  // The wrap-around crosses the rank boundary: 15 hops + 64 cycles wire = 79 cycles per step.
  // At 20000 ns/cycle that is 1.58 ms per step, 31.6 ms over 20 steps at the least.
  const double ns = 20000.0;
  const Timed on = run(ns);
  if (world_rank() == 0) {
    EXPECT_EQ(on.steps_latency_cycles, 20u * 79u);
    const double floor_s = double(on.steps_latency_cycles) * ns * 1e-9;
    EXPECT_GE(on.wall_s, floor_s) << "held back at least the modelled latency";
    EXPECT_GT(on.wall_s, off.wall_s);
    EXPECT_TRUE(on.pes == off.pes) << "injected latency must not change any virtual figure";
  }
}
