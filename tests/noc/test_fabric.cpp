// Fabric primitives at 1, 2 and 4 ranks: hand-computed clocks on tiny lines, the serial
// reference on awkward shapes, and the limit errors.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "fabric_test_util.hpp"
#include "wafermesh/kernels/aligned_buffer.hpp"
#include "wafermesh/util/error.hpp"

using namespace wm;
using namespace wm::test;

namespace {
std::vector<uint64_t> clocks_on_rank0(const Fabric& f) {
  std::vector<uint64_t> c;
  for (const PeCounters& p : f.gather_counters(f.mesh().full())) c.push_back(p.clock_cycles);
  return c;
}
}  // namespace

// 4 x 1 mesh, 16-byte tiles (4 floats): wire time ceil(16/4) = 4 cycles, alpha = 1.
TEST(FabricHand, NaturalRingShiftPaysTheWrapAround) {
  Fabric f(MPI_COMM_WORLD, small_machine(4, 1));
  TileBuf<float> b(f, f.mesh().full(), 4, "t");
  shift(f, b, Axis::X, +1, true);
  // Transfers 0->1, 1->2, 2->3 (1 hop: 1 + 4 = 5 cycles) and the wrap 3->0 (3 hops west: 3 + 4 = 7).
  // Every link carries one message (east- and westbound links are distinct), so load = 1.
  // Senders inject 4 cycles; receivers end at max(4, arrival): PE0 = 7, others 5.
  const auto c = clocks_on_rank0(f);
  if (world_rank() == 0) {
    EXPECT_EQ(c, (std::vector<uint64_t>{7, 5, 5, 5}));
  }
  const auto all = f.gather_counters(f.mesh().full());
  if (world_rank() == 0) {
    EXPECT_EQ(all[0].stall_cycles, 3u);     // 7 - 4
    EXPECT_EQ(all[3].max_hops, 3u);         // the wrap-around
    EXPECT_EQ(all[1].route_peak_entries, 3u);  // own send, receive from PE0, pass-through of the wrap
  }
}

TEST(FabricHand, InterleavedRingShiftIsAtMostTwoHops) {
  Fabric f(MPI_COMM_WORLD, small_machine(4, 1));
  TileBuf<float> b(f, f.mesh().full(), 4, "t");
  shift(f, b, Axis::X, +1, true, LinePerm::interleaved(4));
  // Logical 0,1,2,3 at physical 0,2,3,1: transfers 0->2 (2 hops: 6), 2->3 (1: 5), 3->1 (2: 6),
  // 1->0 (1: 5). Loads 1. Receivers: PE2 = 6, PE3 = 5, PE1 = 6, PE0 = 5.
  const auto c = clocks_on_rank0(f);
  if (world_rank() == 0) {
    EXPECT_EQ(c, (std::vector<uint64_t>{5, 6, 6, 5}));
  }
}

TEST(FabricHand, SharedLinkMultipliesWireTime) {
  Fabric f(MPI_COMM_WORLD, small_machine(4, 1));
  TileBuf<float> b(f, f.mesh().full(), 4, "t");
  TransferPlan p = plan_pairs(f, {{{0, 0}, {2, 0}}, {{1, 0}, {3, 0}}}, b.bytes_per_pe(), "two streams");
  f.execute(p, b.view(), b.view());
  // 0->2 and 1->3 share the eastbound link 1->2: load 2 on both paths.
  // 0->2: 2 hops + 4*2 = 10; 1->3: 2 + 8 = 10. Senders end at 4 (injection).
  const auto c = clocks_on_rank0(f);
  if (world_rank() == 0) {
    EXPECT_EQ(c, (std::vector<uint64_t>{4, 4, 10, 10}));
  }
}

TEST(FabricHand, BroadcastIsOneMulticastStream) {
  Fabric f(MPI_COMM_WORLD, small_machine(4, 1));
  TileBuf<float> b(f, f.mesh().full(), 4, "t");
  broadcast(f, b, Axis::X, 0);
  // One stream: load 1 everywhere, injected once (PE0 = 4); PE k receives at k + 4.
  const auto all = f.gather_counters(f.mesh().full());
  if (world_rank() == 0) {
    EXPECT_EQ(all[0].clock_cycles, 4u);
    EXPECT_EQ(all[1].clock_cycles, 5u);
    EXPECT_EQ(all[2].clock_cycles, 6u);
    EXPECT_EQ(all[3].clock_cycles, 7u);
    EXPECT_EQ(all[0].messages_sent, 1u);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(all[size_t(i)].route_peak_entries, 1u);
  }
}

// The energy model's counters: a multicast's bytes cross each link of its tree once, booked on its
// source; compute tasks count their operations, not their overheads.
TEST(FabricHand, MulticastByteHopsCountTheTreeOnce) {
  Fabric f(MPI_COMM_WORLD, small_machine(5, 4));
  TileBuf<float> b(f, f.mesh().full(), 3, "t");  // 12-byte tiles
  // Stream 0 from (0, 0) to (3, 0) and (3, 2): X first, so the second path shares the three links
  // (0,0)->(3,0) and adds (3,0)->(3,2): 5 links. Stream 1 from (4, 3) to (1, 3) and (4, 1): 3 + 2
  // links, no sharing. Stream 2 from (0, 0) to (1, 1): 2 links.
  TransferPlan p = f.plan({{{0, 0}, {3, 0}, 0, 0}, {{0, 0}, {3, 2}, 0, 0}, {{4, 3}, {1, 3}, 1, 0}, {{4, 3}, {4, 1}, 1, 0},
                           {{0, 0}, {1, 1}, 2, 0}},
                          b.bytes_per_pe(), "multicasts");
  f.execute(p, b.view(), b.view());
  f.charge_compute(Region{0, 0, 2, 1}, 7);  // two PEs, 7 fp MACs each
  f.charge_compute(Region{1, 0, 2, 1}, 4, Work::elem);  // (1, 0) and (2, 0): 4 fp element operations each
  if (f.is_local(1, 0)) f.charge_compute(1, 0, 5, Work::ternary);  // 5 ternary weights on PE (1, 0), by its owner
  if (f.is_local(2, 0)) f.charge_compute(2, 0, 3, Work::integer);  // 3 integer adds on PE (2, 0)
  const auto all = f.gather_counters(f.mesh().full());
  WorkCounts w = f.work_local();
  std::vector<uint64_t> v(WorkCounts::kWords);
  w.to_words(v.data());
  MPI_Allreduce(MPI_IN_PLACE, v.data(), int(v.size()), MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
  if (world_rank() == 0) {
    EXPECT_EQ(all[0].byte_hops, 12u * (5 + 2));  // (0, 0): streams 0 and 2
    EXPECT_EQ(all[3 * 5 + 4].byte_hops, 12u * 5);  // (4, 3)
    EXPECT_EQ(all[0].bytes_sent, 24u);
    EXPECT_EQ(all[0].ops, (OpCounts{7, 0, 0, 0}));  // fp MACs, element, ternary, integer operations
    EXPECT_EQ(all[1].ops, (OpCounts{7, 4, 5, 0}));
    EXPECT_EQ(all[2].ops, (OpCounts{0, 4, 0, 3}));
    EXPECT_EQ(all[3].ops, (OpCounts{}));
    // Operations by kind; 3 streams sent, 5 deliveries, of 12 bytes.
    EXPECT_EQ(v, (std::vector<uint64_t>{14, 8, 5, 3, 36, 60, 144}));
  }
}

TEST(FabricHand, ChainReductionChargesRelayStagesAndAdds) {
  Fabric f(MPI_COMM_WORLD, small_machine(4, 1));
  const Region line{0, 0, 3, 1};
  TileBuf<float> b(f, line, 4, "t");
  b.for_each_local([&](int32_t x, int32_t, float* t) {
    for (int k = 0; k < 4; ++k) t[k] = float(x + 1) * (k + 1);
  });
  reduce(f, b, Axis::X, 1);
  // Step 0: 0->1 and 2->1, each 1 hop + 1 stage + wire: 1 + 30 + 4 = 35. PE1 = 35, then two add
  // tasks of 4 elements: 2 * (10 + 4) = 28 -> 63. Senders: 4 (injection).
  const auto all = f.gather_counters(f.mesh().full());
  const auto data = b.gather();
  if (world_rank() == 0) {
    EXPECT_EQ(all[0].clock_cycles, 4u);
    EXPECT_EQ(all[1].clock_cycles, 63u);
    EXPECT_EQ(all[2].clock_cycles, 4u);
    EXPECT_EQ(all[3].clock_cycles, 0u);  // outside the region
    // Root sums (1+2+3)*(k+1).
    for (int k = 0; k < 4; ++k) EXPECT_EQ(data[4 + size_t(k)], 6.0f * (k + 1));
  }
}

TEST(FabricHand, DeferredArrivalOverlapsCompute) {
  Fabric f(MPI_COMM_WORLD, small_machine(4, 1));
  TileBuf<float> b(f, f.mesh().full(), 4, "t");
  TransferPlan p = plan_pairs(f, {{{0, 0}, {3, 0}}}, b.bytes_per_pe(), "one");
  f.execute(p, b.view(), b.view(), Sync::defer);
  f.charge_compute(f.mesh().full(), 2);  // 10 + 2 = 12 cycles everywhere
  f.wait_arrivals();
  // 0->3: 3 + 4 = 7 arrives while PE3 computes until 12: no stall. PE0: 4 + 12 = 16.
  const auto all = f.gather_counters(f.mesh().full());
  if (world_rank() == 0) {
    EXPECT_EQ(all[3].clock_cycles, 12u);
    EXPECT_EQ(all[3].stall_cycles, 0u);
    EXPECT_EQ(all[0].clock_cycles, 16u);
  }
}

TEST(FabricHand, ReceiveCyclesFollowTheArrival) {
  MachineParams mp = small_machine(4, 1);
  mp.receive_cycles = 3;
  Fabric f(MPI_COMM_WORLD, mp);
  TileBuf<float> b(f, f.mesh().full(), 4, "t");
  shift(f, b, Axis::X, +1, true);
  // As NaturalRingShiftPaysTheWrapAround, then every receiver takes its message in: 3 cycles of
  // compute after max(clock, arrival). PE0 = 7 + 3, others 5 + 3.
  const auto all = f.gather_counters(f.mesh().full());
  if (world_rank() == 0) {
    EXPECT_EQ(all[0].clock_cycles, 10u);
    for (int i = 1; i < 4; ++i) EXPECT_EQ(all[size_t(i)].clock_cycles, 8u);
    EXPECT_EQ(all[1].compute_cycles, 3u);
  }
}

TEST(FabricHand, ReceiveCyclesOfDeferredStepsComeAfterAllArrivals) {
  MachineParams mp = small_machine(4, 1);
  mp.receive_cycles = 3;
  Fabric f(MPI_COMM_WORLD, mp);
  TileBuf<float> b(f, f.mesh().full(), 4, "t");
  TransferPlan p = plan_pairs(f, {{{0, 0}, {3, 0}}}, b.bytes_per_pe(), "first");
  TransferPlan q = plan_pairs(f, {{{2, 0}, {3, 0}}}, b.bytes_per_pe(), "second");
  f.execute(p, b.view(), b.view(), Sync::defer);
  f.execute(q, b.view(), b.view(), Sync::defer);
  f.wait_arrivals();
  // 0->3 arrives at 3 + 4 = 7, 2->3 at 1 + 4 = 5; PE3 = max(0, 7, 5) + 2 * 3 = 13.
  const auto all = f.gather_counters(f.mesh().full());
  if (world_rank() == 0) {
    EXPECT_EQ(all[3].clock_cycles, 13u);
  }
}

// Two tiles into one PE in one step: its two receive tasks follow the later arrival, whichever
// of the two senders departs later (the engine may take a lone message in as it arrives).
TEST(FabricHand, ReceiveCyclesOfOneStepComeAfterAllItsArrivals) {
  for (int late : {0, 2}) {
    MachineParams mp = small_machine(4, 1);
    mp.receive_cycles = 3;
    Fabric f(MPI_COMM_WORLD, mp);
    TileBuf<float> b(f, f.mesh().full(), 4, "t");
    if (f.is_local(late, 0)) f.charge_compute(late, 0, 10);  // 10 MACs + 10 overhead: departs at 20
    TransferPlan p = plan_pairs(f, {{{0, 0}, {3, 0}}, {{2, 0}, {3, 0}}}, b.bytes_per_pe(), "two into one");
    f.execute(p, b.view(), b.view());
    // Both cross link 2->3: wire 4 cycles x load 2. 0->3: departure + 3 + 8; 2->3: departure + 1 + 8.
    // late 0: max(31, 9) + 2 * 3 = 37; late 2: max(11, 29) + 6 = 35.
    const auto all = f.gather_counters(f.mesh().full());
    if (world_rank() == 0) {
      EXPECT_EQ(all[3].clock_cycles, late == 0 ? 37u : 35u) << "late sender " << late;
      EXPECT_EQ(all[3].compute_cycles, 6u);
    }
  }
}

TEST(FabricHand, InjectFractionIsTheSendersShareOfTheWire) {
  MachineParams mp = small_machine(4, 1);
  mp.inject_fraction = 0.3;
  Fabric f(MPI_COMM_WORLD, mp);
  TileBuf<float> b(f, f.mesh().full(), 4, "t");
  TransferPlan p = plan_pairs(f, {{{0, 0}, {2, 0}}, {{1, 0}, {3, 0}}}, b.bytes_per_pe(), "two streams");
  f.execute(p, b.view(), b.view());
  // As SharedLinkMultipliesWireTime, but the senders pay ceil(0.3 * 4) = 2 cycles, not 4.
  const auto c = clocks_on_rank0(f);
  if (world_rank() == 0) {
    EXPECT_EQ(c, (std::vector<uint64_t>{2, 2, 10, 10}));
  }
}

TEST(FabricHand, FractionalBandwidthRoundsTheWireUp) {
  MachineParams mp = small_machine(4, 1);
  mp.link_bytes_per_cycle = 3.5;
  Fabric f(MPI_COMM_WORLD, mp);
  TileBuf<float> b(f, f.mesh().full(), 4, "t");
  TransferPlan p = plan_pairs(f, {{{0, 0}, {3, 0}}}, b.bytes_per_pe(), "one");
  f.execute(p, b.view(), b.view());
  // 16 bytes at 3.5 bytes per cycle: ceil(4.57) = 5 wire cycles. PE3 = 3 + 5 = 8, PE0 = 5.
  const auto c = clocks_on_rank0(f);
  if (world_rank() == 0) {
    EXPECT_EQ(c, (std::vector<uint64_t>{5, 0, 0, 8}));
  }
}

TEST(FabricHand, StreamingReductionPaysTheWireOnceAtTheRoot) {
  MachineParams mp = small_machine(5, 1);
  mp.stream_reductions = true;
  Fabric f(MPI_COMM_WORLD, mp);
  TileBuf<float> b(f, f.mesh().full(), 4, "t");
  b.for_each_local([&](int32_t x, int32_t, float* t) {
    for (int k = 0; k < 4; ++k) t[k] = float(x + 1) * (k + 1);
  });
  reduce(f, b, Axis::X, 1);
  // Right chain 4 -> 3 -> 2 -> 1, left chain 0 -> 1. A stage arrives 1 hop + 1 stage = 31 cycles
  // after its departure, without wire time; an add costs 4 (its elements, no task overhead);
  // senders inject 4.
  //   step 0: 0->1 and 4->3 depart at 0: PE0 = PE4 = 4; PE1 = 31; PE3 = 31, adds -> 35.
  //   step 1: 3->2 departs at 35: PE3 = 39; PE2 = 66, adds -> 70.
  //   step 2: 2->1 departs at 70: PE2 = 74; PE1 = max(31, 101) = 101.
  // PE1 adds both chains (109) and waits for the tail of the stream, 4 wire cycles: 113.
  const auto all = f.gather_counters(f.mesh().full());
  const auto data = b.gather();
  if (world_rank() == 0) {
    EXPECT_EQ(all[0].clock_cycles, 4u);
    EXPECT_EQ(all[4].clock_cycles, 4u);
    EXPECT_EQ(all[3].clock_cycles, 39u);
    EXPECT_EQ(all[2].clock_cycles, 74u);
    EXPECT_EQ(all[1].clock_cycles, 113u);
    for (int k = 0; k < 4; ++k) EXPECT_EQ(data[4 + size_t(k)], 15.0f * (k + 1));
  }
}

// Operation counts charged to regions stay pending per distinct region (strips of the allreduces'
// adders recur thousands of times) and are added to the PEs when read. More distinct regions than
// the pending list holds (4,096), each charged several times with several kinds of work, interleaved
// with reads: every PE's counts equal the sums a plain loop gives.
TEST(FabricOps, PendingRegionChargesSumToEveryPe) {
  const int W = 37, H = 29;
  Fabric f(MPI_COMM_WORLD, small_machine(W, H));
  std::vector<OpCounts> want(size_t(W * H));
  auto charge = [&](Region r, uint64_t ops, Work w) {
    f.charge_compute(r, ops, w);
    for (int32_t y = r.y0; y < r.y0 + r.h; ++y)
      for (int32_t x = r.x0; x < r.x0 + r.w; ++x) want[size_t(y * W + x)].of(w) += ops;
  };
  auto check = [&](const std::string& when) {
    const auto all = f.gather_counters(f.mesh().full());
    if (world_rank() != 0) return;
    size_t bad = 0;
    for (size_t i = 0; i < all.size(); ++i)
      if (!(all[i].ops == want[i]) && bad++ < 3)
        ADD_FAILURE() << when << ": PE " << i << " ops " << all[i].ops.fp_macs << "/" << all[i].ops.elem_ops << "/"
                      << all[i].ops.int_ops << ", want " << want[i].fp_macs << "/" << want[i].elem_ops << "/"
                      << want[i].int_ops;
    EXPECT_EQ(bad, 0u) << when;
  };
  for (int round = 0; round < 3; ++round) {
    for (int32_t y = 0; y < H; ++y)  // 1,073 single PEs, then 2,146 rows and columns of every length
      for (int32_t x = 0; x < W; ++x) charge(Region{x, y, 1, 1}, uint64_t(1 + round), Work::fp);
    for (int32_t y = 0; y < H; ++y)
      for (int32_t w = 1; w <= W; ++w) charge(Region{0, y, w, 1}, 2, round == 1 ? Work::elem : Work::integer);
    for (int32_t x = 0; x < W; ++x)
      for (int32_t h = 1; h <= H; ++h) charge(Region{x, H - h, 1, h}, 3, Work::elem);
    if (round != 1)  // 1,044 pairs: 4,264 distinct regions in this round
      for (int32_t y = 0; y < H; ++y)
        for (int32_t x = 0; x + 1 < W; ++x) charge(Region{x, y, 2, 1}, 11, Work::integer);
    charge(Region{3, 2, 20, 11}, 5, Work::fp);  // a block again and again
    charge(Region{3, 2, 20, 11}, 7, Work::fp);
    if (round == 1) check("after round 1");
  }
  check("at the end");
}

// A new peak window (reset_peaks) starts the longest hop of every PE afresh, also for steps whose
// counters were still pending; the summary and each PE report the window's own.
TEST(FabricHand, PeakWindowStartsTheLongestHopAfresh) {
  Fabric f(MPI_COMM_WORLD, small_machine(5, 2));
  TileBuf<float> b(f, f.mesh().full(), 1, "t");
  TransferPlan far = plan_pairs(f, {{{0, 0}, {4, 0}}}, b.bytes_per_pe(), "4 hops");
  TransferPlan near = plan_pairs(f, {{{1, 1}, {2, 1}}}, b.bytes_per_pe(), "1 hop");
  f.execute(far, b.view(), b.view());
  EXPECT_EQ(f.summarize(f.mesh().full()).max_hops, 4u);
  f.execute(far, b.view(), b.view());  // counted at the reset below, in the old window
  f.reset_peaks();
  f.execute(near, b.view(), b.view());
  EXPECT_EQ(f.summarize(f.mesh().full()).max_hops, 1u);
  const auto all = f.gather_counters(f.mesh().full());
  if (world_rank() == 0) {
    EXPECT_EQ(all[0].max_hops, 0u);      // (0, 0) sent only before the window
    EXPECT_EQ(all[5 + 1].max_hops, 1u);  // (1, 1)
    EXPECT_EQ(all[0].bytes_sent, 8u);    // its traffic is not a peak: both sends count
  }
}

TEST(FabricLimits, SramOverflowNamesPeNeedAndLimitOnEveryRank) {
  MachineParams mp = small_machine(6, 4);
  mp.sram_bytes = 1000;
  Fabric f(MPI_COMM_WORLD, mp);
  TileBuf<float> a(f, Region{2, 1, 3, 2}, 200, "first");  // 800 bytes
  std::string msg;
  try {
    TileBuf<float> b(f, Region{1, 1, 4, 3}, 100, "second");  // 400 more where they overlap
  } catch (const LimitError& e) {
    msg = e.what();
  }
  // The first PE (row-major) holding both is (2, 1): needs 1200 of 1000.
  EXPECT_NE(msg.find("PE (2, 1)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("1200"), std::string::npos) << msg;
  EXPECT_NE(msg.find("pe.sram_bytes = 1000"), std::string::npos) << msg;
  // The failed buffer charged nothing: a 200-byte one still fits.
  TileBuf<float> c(f, Region{1, 1, 4, 3}, 50, "third");
  const auto all = f.gather_counters(f.mesh().full());
  if (world_rank() == 0) {
    EXPECT_EQ(all[size_t(f.mesh().id(2, 1))].sram_peak_bytes, 1000u);
  }
}

TEST(FabricLimits, RouteLimitIsAnErrorOrSoftwareRelays) {
  MachineParams mp = small_machine(4, 1);
  mp.route_entries = 2;
  {
    Fabric f(MPI_COMM_WORLD, mp);
    TileBuf<float> b(f, f.mesh().full(), 4, "t");
    std::string msg;
    try {
      shift(f, b, Axis::X, +1, true);
    } catch (const LimitError& e) {
      msg = e.what();
    }
    // PE (1,0) needs 3 entries (send, receive, the wrap passing through).
    EXPECT_NE(msg.find("PE (1, 0) needs 3 route entries"), std::string::npos) << msg;
    EXPECT_NE(msg.find("noc.route_entries = 2"), std::string::npos) << msg;
  }
  mp.route_fallback = "relay";
  Fabric f(MPI_COMM_WORLD, mp);
  TileBuf<float> b(f, f.mesh().full(), 4, "t");
  shift(f, b, Axis::X, +1, true);
  // With relays the wrap 3->0 stops at PE2 and PE1: 3 hops + 2 stages * 30 + 4 = 67; the 1-hop
  // transfers pay no stage. Relayed patterns hold no route entries.
  const auto all = f.gather_counters(f.mesh().full());
  if (world_rank() == 0) {
    std::vector<uint64_t> c;
    for (const auto& p : all) c.push_back(p.clock_cycles);
    EXPECT_EQ(c, (std::vector<uint64_t>{67, 5, 5, 5}));
    EXPECT_EQ(all[1].route_peak_entries, 0u);
  }
}

// summarize() reduces every rank's part in one collective: maxima of the clocks, peaks and hops,
// sums of the bytes and messages; checked against the gathered counters of a sub-region.
TEST(FabricHand, SummaryIsMaximaAndSumsOverTheRegion) {
  Fabric f(MPI_COMM_WORLD, small_machine(7, 6));
  TileBuf<float> b(f, f.mesh().full(), 3, "t");
  shift(f, b, Axis::X, +2, true);
  shift(f, b, Axis::Y, -1, false);
  // One PE ahead of the others: charged by the rank that owns it (a PE's counters live there only).
  if (f.is_local(3, 4)) f.charge_compute(3, 4, 100);
  const Region r{1, 1, 5, 4};
  const Fabric::Summary s = f.summarize(r);
  const auto all = f.gather_counters(r);
  if (world_rank() != 0) return;
  // The charged PE, (3, 4) = (2, 3) in r, is the one ahead: 100 MACs at one per cycle.
  const PeCounters& ahead = all[size_t(3 * r.w + 2)];
  EXPECT_GE(ahead.compute_cycles, 100u);
  for (size_t i = 0; i < all.size(); ++i)
    if (i != size_t(3 * r.w + 2)) {
      EXPECT_LT(all[i].compute_cycles, ahead.compute_cycles) << "PE " << i;
    }
  Fabric::Summary want;
  for (const PeCounters& c : all) {
    want.max_clock_cycles = std::max(want.max_clock_cycles, c.clock_cycles);
    want.max_compute_cycles = std::max(want.max_compute_cycles, c.compute_cycles);
    want.max_stall_cycles = std::max(want.max_stall_cycles, c.stall_cycles);
    want.max_sram_peak_bytes = std::max(want.max_sram_peak_bytes, c.sram_peak_bytes);
    want.max_route_peak_entries = std::max(want.max_route_peak_entries, c.route_peak_entries);
    want.max_hops = std::max(want.max_hops, c.max_hops);
    want.total_bytes_sent += c.bytes_sent;
    want.total_messages += c.messages_sent;
  }
  EXPECT_GT(want.total_messages, 1u);
  EXPECT_EQ(s.max_clock_cycles, want.max_clock_cycles);
  EXPECT_EQ(s.max_compute_cycles, want.max_compute_cycles);
  EXPECT_EQ(s.max_stall_cycles, want.max_stall_cycles);
  EXPECT_EQ(s.max_sram_peak_bytes, want.max_sram_peak_bytes);
  EXPECT_EQ(s.max_route_peak_entries, want.max_route_peak_entries);
  EXPECT_EQ(s.max_hops, want.max_hops);
  EXPECT_EQ(s.total_bytes_sent, want.total_bytes_sent);
  EXPECT_EQ(s.total_messages, want.total_messages);
}

// A plan kept for reuse: release_routes gives its entries back at once, and the next execution
// configures them again as a fresh plan would, so one that fell back to relays tries routes again.
TEST(FabricLimits, ReleasedPlanRunsAgainAsFreshlyBuilt) {
  MachineParams mp = small_machine(4, 1);
  mp.route_entries = 3;
  mp.route_fallback = "relay";
  Fabric f(MPI_COMM_WORLD, mp);
  TileBuf<float> a(f, f.mesh().full(), 4, "a"), b(f, f.mesh().full(), 4, "b");
  auto ring = [] {  // each PE to its right neighbour, the last back to the first: 3 entries at PE (1, 0)
    std::vector<Transfer> t;
    for (int32_t x = 0; x < 4; ++x) t.push_back({{x, 0}, {(x + 1) % 4, 0}, uint32_t(x), 0});
    return t;
  };
  auto entries = [&] {  // collective; the figures reach rank 0 only
    const auto all = f.gather_counters(f.mesh().full());
    return all.empty() ? uint64_t{0} : uint64_t(all[1].route_entries);
  };
  // Runs plan from equal clocks everywhere; returns what it added to each PE's clock (rank 0).
  auto run = [&](TransferPlan& plan) {
    f.barrier_clocks(f.mesh().full());
    std::vector<uint64_t> before;
    for (const auto& pc : f.gather_counters(f.mesh().full())) before.push_back(pc.clock_cycles);
    f.execute(plan, a.view(), b.view());
    std::vector<uint64_t> added;
    const auto after = f.gather_counters(f.mesh().full());
    for (size_t i = 0; i < after.size(); ++i) added.push_back(after[i].clock_cycles - before[i]);
    return added;
  };
  TransferPlan p = f.plan(ring(), a.bytes_per_pe(), "kept ring");
  std::vector<uint64_t> relayed;
  {
    TransferPlan other = f.plan(ring(), a.bytes_per_pe(), "other ring");
    f.execute(other, a.view(), b.view());  // holds the 3 entries
    relayed = run(p);                      // no room beside it: relays, no entries
    const uint64_t held = entries();
    if (world_rank() == 0) {
      EXPECT_EQ(held, 3u);
    }
    p.release_routes();
  }
  const uint64_t after_release = entries();
  if (world_rank() == 0) {
    EXPECT_EQ(after_release, 0u);
  }
  const std::vector<uint64_t> routed = run(p);  // room now: routes, as a fresh plan
  const uint64_t rerun = entries();
  if (world_rank() == 0) {
    EXPECT_EQ(rerun, 3u);
  }
  p.release_routes();
  const uint64_t released = entries();
  if (world_rank() == 0) {
    EXPECT_EQ(released, 0u);
  }
  TransferPlan q = f.plan(ring(), a.bytes_per_pe(), "fresh ring");
  const std::vector<uint64_t> fresh = run(q);
  if (world_rank() == 0) {
    EXPECT_EQ(routed, fresh);
    EXPECT_GT(relayed[0], routed[0]);  // the wrap into PE (0, 0) paid two relay stages
  }
}

// Awkward shapes against the serial reference: offset regions, odd and prime lengths, every
// primitive, shifts by 0, negative and larger than one, roots at the ends and in the middle.
namespace {
void all_primitives_vs_reference(const MachineParams& mp) {
  Fabric f(MPI_COMM_WORLD, mp);
  ReferenceFabric ref(mp);
  const MeshShape& m = f.mesh();
  for (const Region r : {Region{0, 0, 7, 6}, Region{1, 2, 5, 3}, Region{6, 0, 1, 6}, Region{2, 5, 5, 1}}) {
    for (size_t elems : {size_t(1), size_t(3)}) {
      TileBuf<float> b(f, r, elems, "b");
      RefBuf<float> rb = ref.alloc<float>(r, elems);
      fill(m, b, rb);
      const std::string at = " on " + r.str() + " with " + std::to_string(elems) + " elems";
      for (Axis ax : {Axis::X, Axis::Y}) {
        const int32_t n = line_length(r, ax);
        for (int64_t d : {int64_t(1), int64_t(-1), int64_t(0), int64_t(2), int64_t(-3), int64_t(n + 1)}) {
          for (bool wrap : {true, false}) {
            for (const LinePerm& perm : {LinePerm::natural(n), LinePerm::interleaved(n)}) {
              shift(f, b, ax, d, wrap, perm);
              ref.shift(rb, ax, d, wrap, perm);
            }
          }
        }
        f.charge_compute(r, 3);
        for (int32_t y = r.y0; y < r.y0 + r.h; ++y)
          for (int32_t x = r.x0; x < r.x0 + r.w; ++x) ref.charge_compute({x, y}, 3);
        for (int32_t root : {0, n / 2, n - 1}) {
          broadcast(f, b, ax, root);
          ref.broadcast(rb, ax, root);
          fill(m, b, rb);
          reduce(f, b, ax, root);
          ref.reduce(rb, ax, root);
          expect_tiles_equal(b, rb, "reduce" + at);
        }
      }
      send(f, b, {r.x0, r.y0}, {r.x0 + r.w - 1, r.y0 + r.h - 1});
      ref.send(rb, {r.x0, r.y0}, {r.x0 + r.w - 1, r.y0 + r.h - 1});
      expect_tiles_equal(b, rb, "sequence" + at);
      expect_counters_equal(f, ref, "sequence" + at);
      ref.free(rb);
    }
  }
}
}  // namespace

TEST(FabricVsReference, AwkwardShapesAllPrimitives) { all_primitives_vs_reference(small_machine(7, 6)); }

// The calibrated cost terms: receive tasks, a sender's share of the wire, a fractional bandwidth
// and streaming reductions (whose stages take in no receive task).
TEST(FabricVsReference, AwkwardShapesAllPrimitivesCalibratedCosts) {
  MachineParams mp = small_machine(7, 6);
  mp.receive_cycles = 7;
  mp.inject_fraction = 0.25;
  mp.link_bytes_per_cycle = 3.5;
  mp.stream_reductions = true;
  all_primitives_vs_reference(mp);
}

// fp data held at 2 bytes on the wafer (wafer.dtype fp16: tiles of 1 and 3 floats are 2 and 6
// bytes on the wire, odd against the link width) and fp work at its own rate: the engine and the
// reference must still agree, with store-and-forward and with the calibrated cost terms.
TEST(FabricVsReference, AwkwardShapesAllPrimitivesFp16Wafer) {
  MachineParams mp = small_machine(7, 6);
  mp.wafer_dtype = "fp16";
  mp.fp16_macs_per_cycle = 3;
  all_primitives_vs_reference(mp);
  mp.wafer_dtype = "bf16";
  mp.receive_cycles = 7;
  mp.inject_fraction = 0.25;
  mp.link_bytes_per_cycle = 3.5;
  mp.stream_reductions = true;
  all_primitives_vs_reference(mp);
}

// Tiles are the PEs' working memory, never weights: a tile buffer made while a weights arena's scope
// is alive (as the model's layers are placed) takes nothing from the arena, nor does a fabric made
// there (its per-PE arrays live as long as the fabric, which outlives any model on it).
TEST(FabricMemory, TilesAndPerPeArraysNeverTakeFromAnArena) {
  kernels::HugePageArena arena(1);
  kernels::ArenaScope scope(arena);
  Fabric f(MPI_COMM_WORLD, small_machine(9, 7));
  TileBuf<float> b(f, f.mesh().full(), 5, "t");
  b.for_each_local([&](int32_t, int32_t, float* t) { EXPECT_FALSE(arena.owns(t)); });
  EXPECT_EQ(arena.used(), 0u);
}

// for_each_line_head: only the heads of the lines are written. A const tile() of any PE reads its
// line's head; gather (through view()) and for_each_local see every PE holding its line's tile; a
// second pass along the same axis works on the heads in place; a pass along the other axis first
// brings every PE up to date (its heads read their own tiles). On tiles in place and permuted.
TEST(TileBufReplicate, LineHeadsStandForTheirLinesUntilTheTilesAreRead) {
  Fabric f(MPI_COMM_WORLD, small_machine(7, 5));
  for (bool permute : {false, true})
    for (Axis rep : {Axis::X, Axis::Y}) {
      const std::string what = std::string(permute ? "permuted" : "in place") + (rep == Axis::X ? " X" : " Y");
      TileBuf<float> b(f, f.mesh().full(), 8, "t");  // > 16 bytes: local moves swap slots
      b.for_each_local([](int32_t x, int32_t y, float* t) {
        for (int j = 0; j < 8; ++j) t[j] = float(100 * y + 10 * x + j);  // what the heads replace
      });
      if (permute) shift(f, b, Axis::X, +1, true);
      auto line = [&](int32_t x, int32_t y) { return rep == Axis::X ? y : x; };
      b.for_each_line_head(rep, [&](int32_t x, int32_t y, float* t) {
        for (int j = 0; j < 8; ++j) t[j] = float(1000 + 10 * line(x, y) + j);
      });
      b.for_each_line_head(rep, [&](int32_t, int32_t, float* t) {
        for (int j = 0; j < 8; ++j) t[j] += 0.5f;
      });
      auto want = [&](int32_t x, int32_t y, int j) { return float(1000 + 10 * line(x, y) + j) + 0.5f; };
      const TileBuf<float>& cb = b;
      const Region l = b.local();
      for (int32_t y = l.y0; y < l.y0 + l.h; ++y)
        for (int32_t x = l.x0; x < l.x0 + l.w; ++x)
          for (int j = 0; j < 8; ++j) ASSERT_EQ(cb.tile(x, y)[j], want(x, y, j)) << what << " PE " << x << "," << y;
      const std::vector<float> all = b.gather();
      if (world_rank() == 0) {
        for (int32_t y = 0; y < 5; ++y)
          for (int32_t x = 0; x < 7; ++x)
            for (int j = 0; j < 8; ++j)
              ASSERT_EQ(all[(size_t(y) * 7 + size_t(x)) * 8 + size_t(j)], want(x, y, j)) << what << " PE " << x << "," << y;
      }
      // Values the same on every PE, then doubled in place along the other axis.
      b.for_each_line_head(rep, [&](int32_t, int32_t, float* t) {
        for (int j = 0; j < 8; ++j) t[j] = float(j);
      });
      b.for_each_line_head(rep == Axis::X ? Axis::Y : Axis::X, [&](int32_t, int32_t, float* t) {
        for (int j = 0; j < 8; ++j) t[j] *= 2.0f;
      });
      b.for_each_local([&](int32_t x, int32_t y, float* t) {
        for (int j = 0; j < 8; ++j) ASSERT_EQ(t[j], float(2 * j)) << what << " PE " << x << "," << y;
      });
    }
}

// Heads copied out to their lines against tile-by-tile copies, on tiles in place and on tiles a
// local shift has permuted (buffer swaps), for one tile per row (lines along X) and for a whole
// local row (lines along Y) (awkward 7 x 5 mesh). The passes leave the heads as they are; the
// non-const tile() reads copy them out.
TEST(TileBufReplicate, MatchesPerTileCopiesInPlaceAndPermuted) {
  Fabric f(MPI_COMM_WORLD, small_machine(7, 5));
  for (bool permute : {false, true}) {
    TileBuf<float> b(f, f.mesh().full(), 8, "t");  // > 16 bytes: local moves swap slots
    b.for_each_local([](int32_t x, int32_t y, float* t) {
      for (int j = 0; j < 8; ++j) t[j] = float(100 * y + 10 * x + j);
    });
    if (permute) shift(f, b, Axis::X, +1, true);
    const Region l = b.local();
    if (permute && l.w > 1) {
      EXPECT_TRUE(*b.view().permuted) << "the shift was expected to swap slots";
    }
    if (l.empty()) continue;
    // Expected: along each local row the first tile copied to all; then the first row to all rows.
    std::vector<std::vector<float>> want(size_t(l.size()));
    for (int32_t y = l.y0; y < l.y0 + l.h; ++y)
      for (int32_t x = l.x0; x < l.x0 + l.w; ++x) {
        const float* src = b.tile(l.x0, l.y0);
        want[size_t((y - l.y0) * l.w + (x - l.x0))].assign(src, src + 8);
      }
    b.for_each_line_head(Axis::X, [](int32_t, int32_t, float*) {});
    for (int32_t y = l.y0; y < l.y0 + l.h; ++y)
      for (int32_t x = l.x0; x < l.x0 + l.w; ++x) {
        const float* row_first = b.tile(l.x0, y);
        EXPECT_EQ(std::vector<float>(b.tile(x, y), b.tile(x, y) + 8), std::vector<float>(row_first, row_first + 8))
            << "permuted " << permute << " PE " << x << "," << y;
      }
    b.for_each_line_head(Axis::Y, [](int32_t, int32_t, float*) {});
    for (int32_t y = l.y0; y < l.y0 + l.h; ++y)
      for (int32_t x = l.x0; x < l.x0 + l.w; ++x)
        EXPECT_EQ(std::vector<float>(b.tile(x, y), b.tile(x, y) + 8), want[size_t((y - l.y0) * l.w + (x - l.x0))])
            << "permuted " << permute << " PE " << x << "," << y;
  }
}
